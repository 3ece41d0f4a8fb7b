/**
 * Type-checks the dashboard (helm/inference-metrics/dashboards/inference-harness.json) against
 * the Dashboard type of @grafana/schema. scripts/verify-deploy.sh runs `tsc --noEmit` on this
 * file together with `literal.ts`, which it generates from the same JSON:
 *
 * - here, the JSON module (resolveJsonModule) must have the schema's structure: field names,
 *   nesting, numbers, booleans and arrays where Grafana expects them;
 * - in literal.ts, the dashboard is an object literal typed `Literal<Dashboard>`, so every
 *   unknown field is an error (excess property check) and every enum value must be one Grafana
 *   knows ("absolute", "palette-classic", "query", ...).
 */
import type { Dashboard } from '@grafana/schema';

import dashboardJson from './inference-harness.json';
import type { Widen } from './schema';

export const structural: Widen<Dashboard> = dashboardJson;

/**
 * Views of the @grafana/schema types for checking a dashboard stored as JSON.
 *
 * JSON carries no enums: Grafana's string enums (ThresholdsMode, MappingType, ...) arrive as
 * plain strings. `Literal<T>` replaces every string enum and string-literal union in `T` by its
 * literal values, so an object literal is checked against exactly the strings Grafana accepts.
 * `Widen<T>` replaces them by `string`, for the widened type TypeScript gives a JSON module.
 */
export type Literal<T> = T extends string
  ? string extends T
    ? string
    : `${T}`
  : T extends (infer E)[]
    ? Literal<E>[]
    : T extends object
      ? { [K in keyof T]: Literal<T[K]> }
      : T;

export type Widen<T> = T extends string
  ? string
  : T extends (infer E)[]
    ? Widen<E>[]
    : T extends object
      ? { [K in keyof T]: Widen<T[K]> }
      : T;

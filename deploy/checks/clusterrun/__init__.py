"""A cluster-free run of the rendered deployment: every workload of the chart (each
autoscaling mode) and of k8s/ started as processes with exactly its rendered command, args,
environment, ports, volumes and security context, in network namespaces where Service names
resolve as in the cluster; every probe checked; k8s/README.md's walkthrough followed literally.
Entry point: scripts/cluster-run.sh (python -m clusterrun)."""

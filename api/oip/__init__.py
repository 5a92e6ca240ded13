"""The Open Inference Protocol (KServe V2) REST codec: requests to columns, results to
tensors. The routes live in api.routes.v2; the serving path is api.dataplane's."""

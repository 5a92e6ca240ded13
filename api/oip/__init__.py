"""The Open Inference Protocol (KServe V2) REST codec: requests to columns, results to tensors.
`infer` is answered by api.fastpath, the metadata and health routes by api.routes.v2; both
serve through api.dataplane."""

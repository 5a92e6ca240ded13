"""loopserve's ML core: pure scikit-learn / ONNX code, no database, HTTP or broker.

Data (tuning.data)
    frame(spec, rows) -> DataFrame        dict rows -> feature frame (missing categorical
                                          -> MISSING "__missing__", numeric -> float64 NaN)
    normalize(spec, X) -> DataFrame       any frame with the feature columns -> feature frame
    target(spec, values) -> ndarray       str classes (1, 1.0, "1" -> "1") or float64 values
Pipelines (tuning.pipeline)
    build_pipeline(spec, config, *, random_state) -> Pipeline
ONNX (tuning.export)
    to_onnx(pipeline, spec) -> bytes      inputs per feature; outputs label/probabilities or
                                          variable
    OnnxModel(onnx_bytes, spec).predict(X) -> Prediction
    predict_sklearn(pipeline, X) -> Prediction
    check_parity(pipeline, onnx_bytes, spec, X, *, atol=1e-4) -> ParityReport
Metrics (tuning.metrics)
    score(metric, y_true, pred), greater_is_better(metric), per_row_loss(metric, y_true, pred)
Promotion (tuning.policy)
    decide(spec, y_holdout, champion, challenger, *, baseline=None) -> Decision
    baseline_prediction(spec, y_train, n), mcnemar_p(a_ok, b_ok), paired_bootstrap(...)
Search (tuning.search)
    tune(spec, X, y, *, champion=None, champion_rows_end=None, seed=None, progress=None)
        -> TuneResult(best: Candidate, trials: list[Trial])
    The same search as steps, so one rung's fits can run on several workers (tuning.steps):
    plan(spec, n_rows, *, seed=None) -> SearchState     to_json() / from_json(d) travel
    pending(state) -> list[FitTask(run, rung, start, end)]
    evaluate(spec, X, y, state, task) -> Trial          anywhere, in any order
    advance(spec, state, trials) -> SearchState         next rung, or finished
    finish(spec, X, y, state, *, champion=None, champion_rows_end=None) -> TuneResult
    Candidate.kind: "refit" (best run, refit up to the newest row), "fusion" (a soft-voting
    fusion of the last rung's best runs, when it validates strictly better), "warm_start"
Fusion (tuning.fusion)
    fuse(spec, members, weights) -> Pipeline, fused_candidate(...), is_fused, fused_members
Persistence (tuning.persist)
    dumps(pipeline) -> bytes, loads(data) -> Pipeline   (skops, explicit allow-list)
One retrain end to end (tuning.challenge)
    prepare(spec, rows, labels, *, champion_end=None, change_start=None) -> Split
    search(spec, split, champion, progress=None) -> TuneResult      in this process
    plan_search(spec, split), finish_search(spec, split, state, champion)  step by step
    conclude(spec, split, tune_result, champion) -> Outcome  export, parity, judge on the hold-out

Import from the modules themselves: the package re-exports nothing, so that
``from tuning.spec import ModelSpec`` in the API or the registry does not pay for importing
scikit-learn, skl2onnx and onnxruntime (~2 s).
"""

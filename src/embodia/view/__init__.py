"""`embodia view`: the local web app that browses datasets, evaluation results and training runs
(`viewer`: the FastAPI app and its server; `viewer_data`: what it shows, as JSON-ready dicts; `static/`:
the front end). It reads what the lower layers write (datasets through `embodia.data.reader`, eval
results and training runs as files), so it sits above `data`, beside `train` and `serve`; the report
pages it links to are `embodia.report`'s."""

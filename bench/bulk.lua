-- wrk script: POST the same prepared body (a 1,000-sentence /v1/classify request) again and
-- again. bench/run.py writes the body to a file and names it in SITREP_BULK_BODY.
local file = assert(io.open(os.getenv("SITREP_BULK_BODY"), "rb"))
wrk.method = "POST"
wrk.path = "/v1/classify"
wrk.body = file:read("*a")
wrk.headers["Content-Type"] = "application/json"
file:close()

-- wrk script for the POST /data workload: one 60-byte JSON object per request.
-- The same object every time; the store grows by one object per 201.
wrk.method = "POST"
wrk.body = '{"id":"post","name":"wrk-post-object","value":"abcdefghijk"}'
wrk.headers["Content-Type"] = "application/json"

#!/usr/bin/env python3
# Generates internal/httpapi/openapi.json, the OpenAPI 3.1 document that
# `promptq serve` embeds and serves at /openapi.json. The JSON is generated,
# not edited by hand: change the schemas and paths here, then run
#
#   python3 scripts/gen-openapi.py        (from anywhere; Python 3, stdlib only)
#   go test -run OpenAPI ./internal/httpapi/
#
# and commit both files. The test checks the document against the OpenAPI 3.1
# schema, every route the server registers against its paths, and real
# responses of every route against its schemas (libopenapi-validator).
import os
import json
def ref(n): return {"$ref": "#/components/schemas/"+n}
def prob(desc): return {"description": desc, "content": {"application/problem+json": {"schema": ref("Problem")}}}
def js(desc, schema, headers=None):
    r={"description": desc, "content": {"application/json": {"schema": schema}}}
    if headers: r["headers"]=headers
    return r
acct_q = {"name":"account","in":"query","required":False,"description":"The account (known once a worker has run for it). Left out: every known account, or, on tenant routes, the only known one.","schema":{"type":"string","pattern":"^[A-Za-z0-9_.\\-]{1,64}$"}}
tenant_p = {"name":"tenant","in":"path","required":True,"schema":{"type":"string"}}
common = {
 "401": prob("Missing or wrong bearer token (unauthorized)."),
 "403": prob("Host not allowed, cross-origin request, or read-only server."),
 "405": prob("Method not allowed."),
 "429": prob("Too many requests in flight from this client."),
}
def errs(*codes):
    d={}
    for c in codes:
        d[c]= common.get(c) or prob({"400":"Invalid request (invalid_json, invalid_field, account_required).","404":"Unknown account, tenant or task.","409":"Conflict.","413":"Too large.","415":"Content-Type is not application/json.","503":"Redis failed or the server is shutting down."}[c])
    return d
loc={"Location":{"description":"Where the task can be read.","schema":{"type":"string"}}}
nstr={"type":["string","null"]}
nint={"type":["integer","null"]}
nnum={"type":["number","null"]}
doc = {
 "openapi": "3.1.0",
 "info": {"title": "promptq serve", "version": "1",
   "description": "The JSON API of `promptq serve`. With an admin token, /v1/* and /metrics need `Authorization: Bearer <token>`. Every error is RFC 9457 problem+json with a stable `code`. POST and PUT need `Content-Type: application/json`. /monitoring/ (asynqmon) is not described here."},
 "components": {
  "securitySchemes": {"bearer": {"type":"http","scheme":"bearer"}},
  "schemas": {
   "Problem": {"type":"object","required":["type","title","status","code"],"properties":{
      "type":{"type":"string","format":"uri","description":"urn:promptq:problem:<code>"},
      "title":{"type":"string"},"status":{"type":"integer"},"detail":{"type":"string"},
      "code":{"type":"string","enum":["unauthorized","host_not_allowed","origin_not_allowed","read_only","not_found","account_not_found","tenant_not_found","task_not_found","method_not_allowed","duplicate_task","ambiguous_task","no_account","body_too_large","task_too_large","unsupported_media_type","too_many_requests","invalid_json","invalid_field","account_required","unavailable","enqueue_failed","internal"]},
      "field":{"type":"string"},"location":{"type":"string"}},"additionalProperties":False},
   "Task": {"type":"object","required":["model","input"],"additionalProperties":False,"properties":{
      "id":{"type":"string","maxLength":200},"model":{"type":"string"},
      "input":{"oneOf":[{"type":"string"},{"type":"array","items":{"type":"object","properties":{"role":{"type":"string","enum":["user","assistant","system","developer"]},"content":{}}}}]},
      "instructions":{"type":"string"},"max_output_tokens":{"type":"integer","minimum":1,"maximum":1000000},
      "stream":{"type":"boolean"},"endpoint":{"type":"string","enum":["responses","chat_completions"]},
      "metadata":{"type":"object"},"queue":{"type":"string"},"tenant":{"type":"string"}}},
   "TaskOutcome": {"type":"object","required":["index","status"],"additionalProperties":False,"properties":{
      "index":{"type":"integer"},"id":{"type":"string"},"task_id":{"type":"string"},"queue":{"type":"string"},
      "status":{"type":"string","enum":["enqueued","duplicate","invalid","failed"]},"location":{"type":"string"},"problem":ref("Problem")}},
   "EnqueueResponse": {"type":"object","required":["tasks"],"additionalProperties":False,"properties":{"tasks":{"type":"array","items":ref("TaskOutcome")}}},
   "Result": {"type":"object","required":["id","task_id","queue","status","output_text","usage","error","attempts"],"properties":{
      "id":{"type":"string"},"task_id":{"type":"string"},"queue":{"type":"string"},"status":{"type":"string","enum":["completed","archived"]},
      "output_text":{"type":"string"},"usage":{"type":"object","required":["input_tokens","output_tokens","total_tokens"],"properties":{"input_tokens":{"type":"integer"},"output_tokens":{"type":"integer"},"total_tokens":{"type":"integer"}}},
      "error":{"type":"string"},"error_kind":{"type":"string"},"attempts":{"type":"integer"},"model":{"type":"string"},"endpoint":{"type":"string"},
      "response_id":{"type":"string"},"metadata":{"type":"object"},"started_at":{"type":"string","format":"date-time"},"finished_at":{"type":"string","format":"date-time"}}},
   "TaskState": {"type":"object","required":["id","task_id","queue","state","result"],"additionalProperties":False,"properties":{
      "id":{"type":"string"},"task_id":{"type":"string"},"queue":{"type":"string"},
      "state":{"type":"string","enum":["pending","active","scheduled","retry","archived","completed","aggregating"]},
      "result":{"oneOf":[{"type":"null"},ref("Result")]}}},
   "PauseRequest": {"type":"object","additionalProperties":False,"properties":{
      "for":{"type":"string","description":"a duration such as 30m"},"until":{"type":"string","format":"date-time"},"reason":{"type":"string","maxLength":500}}},
   "PauseResponse": {"type":"object","required":["paused"],"additionalProperties":False,"properties":{"paused":{"type":"array","items":{"type":"object","required":["account","until","reason","kind"],"additionalProperties":False,"properties":{
      "account":{"type":"string"},"until":{"type":["string","null"],"format":"date-time"},"reason":{"type":"string"},"kind":{"type":"string"}}}}}},
   "ResumeResponse": {"type":"object","required":["resumed","queues_unpaused"],"additionalProperties":False,"properties":{
      "resumed":{"type":"array","items":{"type":"string"}},"queues_unpaused":{"type":"array","items":{"type":"string"}}}},
   "Pause": {"type":"object","required":["paused","until","reason","remaining_ms"],"additionalProperties":False,"properties":{
      "paused":{"type":"boolean"},"until":{"type":["string","null"],"format":"date-time"},"reason":{"type":"string"},"kind":{"type":"string"},
      "set_by":{"type":"string"},"remaining_ms":nint,"account":{"type":"string"},"shared_queues":{"type":"array","items":{"type":"string"}}}},
   "Queue": {"type":"object","required":["pending","active","scheduled","retry","archived","completed","paused"],"additionalProperties":False,"properties":{
      "pending":{"type":"integer"},"active":{"type":"integer"},"scheduled":{"type":"integer"},"retry":{"type":"integer"},"archived":{"type":"integer"},"completed":{"type":"integer"},"paused":{"type":"boolean"},
      "throughput":{"type":"object","required":["per_second","source","samples","backlog","eta_ms","paused","paused_until","pause_reason"],"additionalProperties":False,"properties":{
         "per_second":{"type":"number"},"source":{"type":"string","enum":["observed","assumed","none"]},"samples":{"type":"integer"},"backlog":{"type":"integer"},
         "eta_ms":{"type":["integer","null"],"description":"Backlog / per_second, plus what is left of a pause that holds the queue; null without a rate or while the queue is paused until resumed."},
         "paused":{"type":"boolean","description":"Every account serving the queue is paused, or the asynq queue itself is."},
         "paused_until":{"type":["string","null"],"description":"When the hold ends (RFC 3339); null when not paused or paused until resumed."},
         "pause_reason":{"type":"string"}}}}},
   "Bucket": {"type":"object","required":["limit","available","reset_in_ms","source"],"additionalProperties":False,"properties":{
      "limit":nint,"available":nnum,"reset_in_ms":nint,"source":{"type":"string","enum":["headers","config","ramp","unknown"]}}},
   "TenantBudget": {"type":"object","required":["rpm","tpm","daily_requests","weight"],"additionalProperties":False,"properties":{
      "rpm":{"type":"integer","minimum":0},"tpm":{"type":"integer","minimum":0},"daily_requests":{"type":"integer","minimum":0},"weight":{"type":"integer","minimum":0,"maximum":1000}}},
   "TenantBudgetRequest": {"type":"object","additionalProperties":False,"properties":{
      "rpm":{"type":"integer","minimum":0},"tpm":{"type":"integer","minimum":0},"daily_requests":{"type":"integer","minimum":0},"weight":{"type":"integer","minimum":0,"maximum":1000}}},
   "Tenant": {"type":"object","required":["tenant","budget","requests_available","tokens_available","daily_requests_used"],"additionalProperties":False,"properties":{
      "tenant":{"type":"string"},"budget":ref("TenantBudget"),"requests_available":{"type":"number"},"tokens_available":{"type":"number"},"daily_requests_used":{"type":"integer"}}},
   "TenantResponse": {"type":"object","required":["account","tenant","budget"],"additionalProperties":False,"properties":{
      "account":{"type":"string"},"tenant":{"type":"string"},"budget":ref("TenantBudget")}},
   "Quota": {"type":"object","required":["account","requests","tokens","daily","in_flight","throttled","ramp_fraction","input_token_estimate","calibration","tenants","fair","updated_at"],"additionalProperties":False,"properties":{
      "account":{"type":"string"},"requests":ref("Bucket"),"tokens":ref("Bucket"),
      "daily":{"type":"object","required":["date","requests","tokens","request_limit","token_limit","threshold","reset_at"],"additionalProperties":False,"properties":{
         "date":{"type":"string"},"requests":{"type":"integer"},"tokens":{"type":"integer"},"request_limit":nint,"token_limit":nint,"threshold":{"type":"number"},"reset_at":{"type":["string","null"],"format":"date-time"}}},
      "in_flight":{"type":"integer"},"throttled":{"type":"integer"},"ramp_fraction":{"type":"number"},
      "input_token_estimate":{"type":"object","required":["samples","mean_abs_error","bias"],"additionalProperties":False,"properties":{"samples":{"type":"integer"},"mean_abs_error":nnum,"bias":nnum}},
      "calibration":{"type":"object","required":["source","basis","factor","spread","ring","samples","bad","missing"],"additionalProperties":False,"properties":{"source":nstr,"basis":nstr,"factor":nnum,"spread":nnum,"ring":{"type":"integer"},"samples":{"type":"integer"},"bad":{"type":"integer"},"missing":{"type":"integer"}}},
      "tenants":{"type":"array","items":ref("Tenant")},
      "fair":{"type":"array","items":{"type":"object","required":["tenant","weight","pending_until","lead_ms","yielding"],"additionalProperties":False,"properties":{
         "tenant":{"type":"string"},"weight":{"type":"integer"},"pending_until":{"type":["string","null"],"format":"date-time"},"lead_ms":{"type":"integer"},"yielding":{"type":"boolean"}}}},
      "updated_at":{"type":["string","null"],"format":"date-time"}}},
   "PoolAccount": {"type":"object","required":["account","tier","state","pause","paused_models","requests","tokens","requests_today","tokens_today","share_today"],"additionalProperties":False,"properties":{
      "account":{"type":"string"},"tier":{"type":"integer","minimum":1},
      "state":{"type":"string","enum":["active","paused","paused_models"],"description":"paused: wholly (see pause); paused_models: for the models in paused_models alone."},
      "pause":ref("Pause"),
      "paused_models":{"type":"array","items":{"type":"object","required":["model","until"],"additionalProperties":False,"properties":{"model":{"type":"string"},"until":{"type":["string","null"],"format":"date-time"}}}},
      "requests":ref("Bucket"),"tokens":ref("Bucket"),"requests_today":{"type":"integer"},"tokens_today":{"type":"integer"},
      "share_today":{"type":["number","null"],"minimum":0,"maximum":1,"description":"requests_today / the pool's requests_today; null while the pool has served nothing today."}}},
   "Pool": {"type":"object","required":["date","requests_today","tokens_today","accounts"],"additionalProperties":False,"description":"An account pool (promptq worker --pool): its accounts by tier, then name.","properties":{
      "date":{"type":"string","description":"The day of the counts and shares (YYYY-MM-DD in the daily budget's zone)."},"requests_today":{"type":"integer"},"tokens_today":{"type":"integer"},
      "accounts":{"type":"array","items":ref("PoolAccount")}}},
   "QuotaReport": {"type":"object","required":["now","accounts","pools"],"additionalProperties":False,"description":"GET /v1/quota: every account's pause and quota, and the pools that hold them, cheap enough to poll every second (the quota page at /quota/ does).","properties":{
      "now":{"type":"string"},"accounts":{"type":"object","additionalProperties":{"type":"object","required":["pause","quota"],"additionalProperties":False,"properties":{"pause":ref("Pause"),"quota":ref("Quota")}}},
      "pools":{"type":"object","additionalProperties":ref("Pool")}}},
   "Status": {"type":"object","required":["queues","pause","accounts","quota","pools"],"additionalProperties":False,"properties":{
      "queues":{"type":"object","additionalProperties":ref("Queue")},"pause":ref("Pause"),
      "accounts":{"type":"object","additionalProperties":ref("Pause")},"quota":{"type":"object","additionalProperties":ref("Quota")},
      "pools":{"type":"object","additionalProperties":ref("Pool"),"description":"Account pools that hold any of the accounts, by name, with every member."}}},
   "Health": {"type":"object","required":["status"],"properties":{"status":{"type":"string","const":"ok"}}}
  }},
 "security": [{"bearer": []}],
 "paths": {
  "/healthz": {"get": {"operationId":"health","summary":"Redis answers PING","security":[],"responses":{"200":js("Healthy.",ref("Health")),**errs("403","405","429","503")}}},
  "/readyz": {"get": {"operationId":"ready","summary":"Like /healthz; 503 once shutdown began","security":[],"responses":{"200":js("Ready.",ref("Health")),**errs("403","405","429","503")}}},
  "/openapi.json": {"get": {"operationId":"openapi","summary":"This document","security":[],"responses":{"200":js("The OpenAPI document.",{"type":"object"}),**errs("403","405","429")}}},
  "/metrics": {"get": {"operationId":"metrics","summary":"Prometheus metrics (behind the token unless --metrics-public)","responses":{"200":{"description":"Prometheus text format.","content":{"text/plain":{"schema":{"type":"string"}}}},**errs("401","403","405","429")}}},
  "/v1/tasks": {"post": {"operationId":"enqueue","summary":"Enqueue one task, or an array of them",
      "requestBody":{"required":True,"content":{"application/json":{"schema":{"oneOf":[ref("Task"),{"type":"array","items":ref("Task"),"minItems":1}]}}}},
      "responses":{"202":js("Enqueued: one task's outcome (with Location), or every task's of an array.",{"oneOf":[ref("TaskOutcome"),ref("EnqueueResponse")]},{"Location":{"description":"Where the task can be read (one task).","schema":{"type":"string"}}}),
         "207":js("An array of which some task was not enqueued: each task's outcome and problem.",ref("EnqueueResponse")),
         "409":{"description":"A task with this id exists (duplicate_task); Location and location name it.","headers":loc,"content":{"application/problem+json":{"schema":ref("Problem")}}},
         **errs("400","401","403","405","413","415","429","503")}}},
  "/v1/tasks/{id}": {"get": {"operationId":"getTask","summary":"A task's state and, once finished, its result, from whichever queue holds it",
      "parameters":[{"name":"id","in":"path","required":True,"schema":{"type":"string"}},{"name":"queue","in":"query","required":False,"schema":{"type":"string"},"description":"Only look in this queue."}],
      "responses":{"200":js("The task.",ref("TaskState")),"409":prob("Several queues hold the id (ambiguous_task)."),**errs("401","403","404","405","429","503")}}},
  "/v1/pause": {"post": {"operationId":"pause","summary":"Pause the account (or every known account)","parameters":[acct_q],
      "requestBody":{"required":False,"content":{"application/json":{"schema":ref("PauseRequest")}}},
      "responses":{"200":js("Paused.",ref("PauseResponse")),"409":prob("No account known yet (no_account)."),**errs("400","401","403","404","405","413","415","429","503")}}},
  "/v1/resume": {"post": {"operationId":"resume","summary":"Resume the account (or every paused account and queue)","parameters":[acct_q],
      "requestBody":{"required":False,"content":{"application/json":{"schema":{"type":"object","additionalProperties":False}}}},
      "responses":{"200":js("Resumed.",ref("ResumeResponse")),**errs("400","401","403","404","405","413","415","429","503")}}},
  "/v1/status": {"get": {"operationId":"status","summary":"Queues, pause and quota: the JSON of promptq status --json","parameters":[acct_q],
      "responses":{"200":js("The status.",ref("Status")),**errs("400","401","403","404","405","429","503")}}},
  "/v1/quota": {"get": {"operationId":"quota","summary":"Pause and quota of the account (or every known account), without the queues: what the quota page polls every second","parameters":[acct_q],
      "responses":{"200":js("Pause and quota per account.",ref("QuotaReport")),**errs("400","401","403","404","405","429","503")}}},
  "/v1/tenants": {"get": {"operationId":"listTenants","summary":"The account's tenant budgets and use","parameters":[acct_q],
      "responses":{"200":js("Tenants, sorted by name.",{"type":"array","items":ref("Tenant")}),"409":prob("No account known yet (no_account)."),**errs("400","401","403","404","405","429","503")}}},
  "/v1/tenants/{tenant}": {
    "get": {"operationId":"getTenant","summary":"One tenant's budget and use","parameters":[tenant_p,acct_q],
      "responses":{"200":js("The tenant.",ref("Tenant")),"409":prob("No account known yet (no_account)."),**errs("400","401","403","404","405","429","503")}},
    "put": {"operationId":"setTenant","summary":"Set (replace) a tenant's budget","parameters":[tenant_p,acct_q],
      "requestBody":{"required":True,"content":{"application/json":{"schema":ref("TenantBudgetRequest")}}},
      "responses":{"200":js("The stored budget.",ref("TenantResponse")),"409":prob("No account known yet (no_account)."),**errs("400","401","403","404","405","413","415","429","503")}},
    "delete": {"operationId":"deleteTenant","summary":"Remove a tenant's budget","parameters":[tenant_p,acct_q],
      "responses":{"204":{"description":"Deleted."},"409":prob("No account known yet (no_account)."),**errs("400","401","403","404","405","429","503")}}}
 }}
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "internal", "httpapi", "openapi.json")
with open(out, "w") as f:
    json.dump(doc, f, indent=2)

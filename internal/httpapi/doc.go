// Package httpapi is the HTTP face of promptq (`promptq serve`): one server
// for operators and for producers that are not written in Go.
//
//	srv, err := httpapi.New(httpapi.Config{
//		Redis:        rdb,          // *redis.Client
//		RedisConnOpt: redisConnOpt, // asynq.RedisConnOpt of the same Redis
//		AdminToken:   os.Getenv("PROMPTQ_ADMIN_TOKEN"),
//		Logger:       logger,
//	})
//	if err != nil { ... }
//	defer srv.Close()
//	err = srv.ListenAndServe(ctx, "127.0.0.1:8080") // returns after ctx ends and requests drain
//
// Routes (the OpenAPI 3.1 document served at /openapi.json describes every
// one of them, bodies and errors included):
//
//	/monitoring/       asynqmon's UI and its API (/monitoring/api/...)
//	GET /metrics       Prometheus: asynq queue series and promptq_* quota/pause series
//	GET /healthz, /readyz  Redis PING; readyz also fails while shutting down
//	GET /openapi.json  the OpenAPI document
//	POST /v1/tasks     enqueue one task object (202, 409 duplicate id, 413 too large)
//	                   or an array of them (202, or 207 with each task's outcome)
//	GET  /v1/tasks/{id}[?queue=Q]  a task's state and, once finished, its result,
//	                   from whichever queue holds it
//	POST /v1/pause[?account=A], POST /v1/resume[?account=A], GET /v1/status[?account=A]
//	GET /v1/tenants?account=A          the account's tenant budgets and use ([] when none)
//	GET /v1/tenants/{tenant}?account=A one tenant's budget and use
//	PUT /v1/tenants/{tenant}?account=A set (replace) a budget: {"rpm":60,"tpm":0,"daily_requests":0,"weight":3}
//	DELETE /v1/tenants/{tenant}?account=A  remove it: 204, or 404 when it had none
//
// Every route that acts on an account names it with ?account=. An unknown
// account is refused with 404 and never created. Pause, resume and status
// act on every known account when it is left out; the tenant routes need it
// only while more than one account is known.
//
// With an AdminToken, /v1/* and /metrics need "Authorization: Bearer
// <token>" (Basic auth is refused there: browsers resend it cross-site), and
// /monitoring/* also takes HTTP basic auth with the token as password, so a
// browser can open the UI. MetricsPublic opens /metrics again. /healthz,
// /readyz and /openapi.json are always open. Without a token, ListenAndServe
// refuses an address that is not loopback, and only the Host names in
// AllowedHosts (by default localhost, 127.0.0.1, ::1 and the bound address)
// are accepted, against DNS rebinding. On every route, a state-changing
// request from another origin (Sec-Fetch-Site, else Origin against Host) is
// refused unless AllowedOrigins lists it; POST and PUT under /v1 need
// "Content-Type: application/json". ReadOnly refuses every method but GET
// and HEAD with 403. MaxClientRequests bounds the requests in flight per
// client address (429 beyond), and the server sets read, write and idle
// timeouts.
//
// Every error is an RFC 9457 problem (Content-Type application/problem+json,
// type Problem):
//
//	{"type": "urn:promptq:problem:task_not_found", "title": "Unknown task",
//	 "status": 404, "detail": "...", "code": "task_not_found"}
//
// plus "field" when one request field is at fault and "location" for a
// duplicate task. Clients branch on code (the Code* constants), which is
// stable; title and detail are for people.
package httpapi

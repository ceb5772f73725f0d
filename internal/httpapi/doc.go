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
// Routes:
//
//	/monitoring/       asynqmon's UI and its API (/monitoring/api/...)
//	/metrics           Prometheus: asynq queue series and promptq_* quota/pause series
//	/healthz, /readyz  Redis PING; readyz also fails while shutting down
//	POST /v1/tasks     enqueue one task object or an array of them
//	GET  /v1/tasks/{id}?queue=Q  a task's state and, once finished, its result
//	POST /v1/pause, POST /v1/resume, GET /v1/status
//	GET /v1/tenants?account=A          the account's tenant budgets and use ([] when none)
//	PUT /v1/tenants/{tenant}?account=A set (replace) a budget: {"rpm":60,"tpm":0,"daily_requests":0,"weight":3}
//	DELETE /v1/tenants/{tenant}?account=A  remove it: {"deleted": true|false}
//
// The tenant routes act on one account: ?account= may be left out while only
// one account is known.
//
// With an AdminToken, /v1/* and /monitoring/* need "Authorization: Bearer
// <token>" (or HTTP basic auth with the token as password, so a browser can
// open the UI); /metrics, /healthz and /readyz stay open. ReadOnly refuses
// every method but GET and HEAD with 403. Errors are JSON:
// {"error": "...", "field": "..."}.
package httpapi

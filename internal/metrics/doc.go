// Package metrics holds promptq's Prometheus collectors. Both read Redis on
// each scrape; neither registers itself anywhere: the caller creates a
// registry and registers them.
//
//	reg := prometheus.NewRegistry()
//	reg.MustRegister(
//		metrics.NewQueueCollector(inspector),
//		metrics.NewCollector(metrics.Config{Redis: rdb, Accounts: listAccounts}),
//	)
//	http.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
//
// QueueCollector exports asynq's per-queue series under the names of asynq's
// own x/metrics collector (asynq_queue_size, asynq_queue_latency_seconds, ...;
// its two gauges named _total are asynq_queue_tasks and asynq_queue_paused),
// so asynq's published dashboards work unchanged. Collector exports promptq's
// quota and pause state as promptq_* series, and per tenant of an account
// (label tenant; NoTenant, "(none)", for requests without a tenant) the
// budgets, what is left of them, and the weighted fair-sharing state:
// promptq_tenant_budget, promptq_tenant_weight, promptq_tenant_available,
// promptq_tenant_daily_requests_used, promptq_tenant_pending,
// promptq_tenant_fair_lead_seconds and promptq_tenant_yielding. Per account
// pool (promptq worker --pool) it exports each member with its tier,
// promptq_pool_account_info, and its share of the pool's requests today,
// promptq_pool_traffic_share; promptq_account_model_paused marks an
// account's pause for one model alone.
package metrics

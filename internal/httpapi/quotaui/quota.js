// promptq quota page: polls GET /v1/quota every second and draws, per
// account, used against limit for requests and tokens, 429s and in-flight
// reservations (uPlot), with the pause, daily budget, tenants and cost
// calibration as text, and one table per account pool (state, share of
// the pool's requests today, headroom). The admin token (when serve has one) is read from
// the URL fragment #token=... or the form, kept in sessionStorage, and sent
// as a bearer token; it never goes into a URL sent to the server.
"use strict";
(function () {
  const HISTORY = 300; // points (seconds) kept per chart
  const hash = new URLSearchParams(location.hash.slice(1));
  if (hash.get("token")) {
    sessionStorage.setItem("promptq-token", hash.get("token"));
    history.replaceState(null, "", location.pathname + location.search);
  }
  const $ = (id) => document.getElementById(id);
  $("auth").addEventListener("submit", (e) => {
    e.preventDefault();
    sessionStorage.setItem("promptq-token", $("token").value);
    $("auth").hidden = true;
  });

  const accounts = {}; // name -> {el, charts, series, lastThrottled, lastT}
  let updates = 0;

  function fmtMs(ms) {
    if (ms == null) return "-";
    const s = Math.round(ms / 1000);
    if (s < 60) return s + "s";
    if (s < 3600) return Math.floor(s / 60) + "m" + String(s % 60).padStart(2, "0") + "s";
    return Math.floor(s / 3600) + "h" + String(Math.floor(s / 60) % 60).padStart(2, "0") + "m";
  }
  const num = (v) => (v == null ? "-" : (Math.round(v * 100) / 100).toLocaleString());
  const text = (el, s) => { el.textContent = s; return el; };
  function node(tag, cls, parent) {
    const el = document.createElement(tag);
    if (cls) el.className = cls;
    if (parent) parent.appendChild(el);
    return el;
  }

  const CHARTS = [
    { key: "requests", title: "Requests: used vs limit (per minute)", series: [["used", "#1976d2"], ["limit", "#d32f2f"]] },
    { key: "tokens", title: "Tokens: used vs limit (per minute)", series: [["used", "#388e3c"], ["limit", "#d32f2f"]] },
    { key: "throttled", title: "429s per second, and reservations in flight", series: [["429/s", "#e65100"], ["in flight", "#6a1b9a"]] },
  ];

  function addAccount(name) {
    const el = node("section", "account", $("accounts"));
    el.dataset.account = name;
    const h = node("h2", "", el);
    text(node("span", "", h), name);
    const badge = node("span", "badge", h);
    const facts = node("div", "facts", el);
    const box = node("div", "charts", el);
    const a = { el, badge, facts, series: {}, charts: {}, t: [], lastThrottled: null, lastT: null };
    for (const c of CHARTS) {
      const wrap = node("div", "chart", box);
      wrap.dataset.chart = c.key;
      wrap.dataset.points = "0";
      text(node("h3", "", wrap), c.title);
      a.series[c.key] = c.series.map(() => []);
      a.charts[c.key] = new uPlot({
        width: 440, height: 180,
        scales: { x: { time: true } },
        series: [{}].concat(c.series.map(([label, stroke]) => ({ label, stroke, width: 2, spanGaps: false }))),
        axes: [{}, { size: 60 }],
      }, [[]].concat(c.series.map(() => [])), node("div", "", wrap));
    }
    a.tenants = node("div", "", el);
    accounts[name] = a;
    return a;
  }

  function used(b) {
    return b.limit == null || b.available == null ? null : Math.max(0, b.limit - b.available);
  }

  function update(name, acct, nowS) {
    const a = accounts[name] || addAccount(name);
    const q = acct.quota, p = acct.pause;
    // Pause.
    a.el.dataset.paused = String(p.paused);
    if (p.paused) {
      a.badge.className = "badge paused";
      text(a.badge, p.until ? `paused until ${p.until} (${p.reason}), ${fmtMs(p.remaining_ms)} left` : `paused until resumed (${p.reason})`);
    } else {
      a.badge.className = "badge running";
      text(a.badge, "running");
    }
    // History.
    let rate = null;
    if (a.lastThrottled != null && nowS > a.lastT) rate = Math.max(0, (q.throttled - a.lastThrottled) / (nowS - a.lastT));
    a.lastThrottled = q.throttled; a.lastT = nowS;
    a.t.push(nowS);
    const vals = {
      requests: [used(q.requests), q.requests.limit],
      tokens: [used(q.tokens), q.tokens.limit],
      throttled: [rate, q.in_flight],
    };
    if (a.t.length > HISTORY) a.t.shift();
    for (const c of CHARTS) {
      const s = a.series[c.key];
      vals[c.key].forEach((v, i) => { s[i].push(v); if (s[i].length > HISTORY) s[i].shift(); });
      a.charts[c.key].setData([a.t.slice()].concat(s.map((x) => x.slice())));
      const wrap = a.el.querySelector(`[data-chart="${c.key}"]`);
      wrap.dataset.points = String(s[0].filter((v) => v != null).length);
    }
    // Facts.
    const d = q.daily, cal = q.calibration, est = q.input_token_estimate;
    a.facts.replaceChildren();
    const fact = (label, value) => { const el = node("div", "", a.facts); text(node("b", "", el), label + ": "); el.append(value); };
    fact("requests", `${num(used(q.requests))} used of ${num(q.requests.limit)}, full in ${fmtMs(q.requests.reset_in_ms)} (${q.requests.source})`);
    fact("tokens", `${num(used(q.tokens))} used of ${num(q.tokens.limit)}, full in ${fmtMs(q.tokens.reset_in_ms)} (${q.tokens.source})`);
    fact("429s", `${q.throttled} in all`);
    fact("pause", p.paused ? `${p.kind || "?"}: ${p.reason}${p.until ? ", until " + p.until + ", " + fmtMs(p.remaining_ms) + " left" : ", until resumed"}` : "none");
    fact("daily budget", `${d.date}: ${d.requests} requests of ${num(d.request_limit)}, ${d.tokens} tokens of ${num(d.token_limit)}, pauses at ${Math.round(100 * d.threshold)}%, resets ${d.reset_at}`);
    fact("cost calibration", cal.factor == null ? `nothing learned yet (${cal.samples} samples, ${cal.bad} refused, ${cal.missing} without remaining)` :
      `${num(cal.factor)} × ${cal.basis} from ${cal.source}, spread ${num(cal.spread)}, ${cal.samples} samples (${cal.ring} in ring), ${cal.bad} refused, ${cal.missing} missing`);
    fact("input estimate", est.samples ? `${est.samples} samples, mean abs error ${num(est.mean_abs_error)} tokens, bias ${num(100 * est.bias)}%` : "no samples yet");
    fact("admitting", `${Math.round(100 * q.ramp_fraction)}% of the limits, ${q.in_flight} in flight`);
    // Tenants' shares.
    a.tenants.replaceChildren();
    const fair = {};
    for (const f of q.fair || []) fair[f.tenant || "(none)"] = f;
    const names = new Set(Object.keys(fair));
    for (const t of q.tenants || []) names.add(t.tenant || "(none)");
    if (names.size) {
      const tbl = node("table", "", a.tenants);
      const hr = node("tr", "", node("thead", "", tbl));
      for (const h of ["tenant", "weight", "share", "rpm", "tpm", "requests/day", "used today", "requests left", "tokens left", "fair lead", "yielding"]) text(node("th", "", hr), h);
      const tb = node("tbody", "", tbl);
      const byName = {};
      for (const t of q.tenants || []) byName[t.tenant || "(none)"] = t;
      let wsum = 0;
      const weight = (n) => Math.max(1, (byName[n] && byName[n].budget.weight) || (fair[n] && fair[n].weight) || 1);
      for (const n of names) wsum += weight(n);
      for (const n of [...names].sort()) {
        const t = byName[n], f = fair[n], b = t ? t.budget : {};
        const r = node("tr", "", tb);
        for (const v of [n, weight(n), Math.round(100 * weight(n) / wsum) + "%", num(b.rpm), num(b.tpm), num(b.daily_requests),
          t ? t.daily_requests_used : "-", t ? num(t.requests_available) : "-", t ? num(t.tokens_available) : "-",
          f ? fmtMs(f.lead_ms) : "-", f ? String(f.yielding) : "-"]) text(node("td", "", r), String(v));
      }
    }
  }

  const pct = (v) => (v == null ? "-" : (Math.round(1000 * v) / 10) + "%");
  const headroom = (b) => (b.limit == null ? "unknown" : `${num(b.available)} of ${num(b.limit)}`);
  function poolState(a) {
    const parts = [];
    const p = a.pause;
    if (p.paused) parts.push(`paused until ${p.until || "resumed"} (${p.reason}, ${p.kind || "?"})`);
    if (a.paused_models.length) parts.push(`paused for models [${a.paused_models.map((m) => m.model).join(" ")}]`);
    return parts.length ? parts.join("; ") : "active";
  }

  // drawPools shows one small table per pool, and each member's place in
  // its pool among the account's facts.
  function drawPools(pools) {
    const box = $("pools");
    box.replaceChildren();
    const member = {};
    for (const name of Object.keys(pools || {}).sort()) {
      const p = pools[name];
      const el = node("section", "pool", box);
      el.dataset.pool = name;
      text(node("h2", "", el), `pool ${name}`);
      text(node("div", "facts", el), `${p.requests_today} requests, ${p.tokens_today} tokens today (${p.date}); share = the account's part of the pool's requests today`);
      const tbl = node("table", "", el);
      const hr = node("tr", "", node("thead", "", tbl));
      for (const h of ["tier", "account", "state", "share today", "requests today", "tokens today", "requests available", "tokens available"]) text(node("th", "", hr), h);
      const tb = node("tbody", "", tbl);
      for (const a of p.accounts) {
        const r = node("tr", "", tb);
        r.dataset.account = a.account;
        r.dataset.state = a.state;
        for (const v of [a.tier, a.account, poolState(a), pct(a.share_today), a.requests_today, a.tokens_today, headroom(a.requests), headroom(a.tokens)]) text(node("td", "", r), String(v));
        (member[a.account] = member[a.account] || []).push(`${name}, tier ${a.tier}, ${pct(a.share_today)} of today's requests`);
      }
    }
    for (const [name, a] of Object.entries(accounts)) {
      if (!member[name]) continue;
      const el = node("div", "", a.facts);
      text(node("b", "", el), "pool: ");
      el.append(member[name].join("; "));
    }
  }

  async function poll() {
    const headers = {};
    const token = sessionStorage.getItem("promptq-token");
    if (token) headers.Authorization = "Bearer " + token;
    try {
      // location.origin: never the user:password@ a page URL may carry.
      const resp = await fetch(location.origin + "/v1/quota", { headers, cache: "no-store" });
      if (resp.status === 401) {
        $("auth").hidden = false;
        text($("state"), "needs the admin token");
        return;
      }
      if (!resp.ok) { text($("state"), `GET /v1/quota: ${resp.status}`); return; }
      const rep = await resp.json();
      const nowS = Date.parse(rep.now) / 1000;
      for (const name of Object.keys(rep.accounts).sort()) update(name, rep.accounts[name], nowS);
      drawPools(rep.pools);
      updates++;
      document.body.dataset.updates = String(updates);
      text($("state"), `${Object.keys(rep.accounts).length} account(s), updated ${rep.now}`);
    } catch (e) {
      text($("state"), "update failed: " + e);
    }
  }
  poll();
  setInterval(poll, 1000);
})();

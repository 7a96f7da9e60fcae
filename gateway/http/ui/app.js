// The operator page. Plain JavaScript, no library, no build step.
//
// Data comes from the API with the token the operator typed in (kept in this tab's
// sessionStorage, sent only in the Authorization header, never in a URL, never logged):
//   - GET /v1/status every second (state, halt, risk measures and their limits, failures, broker);
//   - GET /v1/events, the Server-Sent Events stream, read with fetch() because EventSource cannot
//     send a header; reconnected by itself with Last-Event-ID after a drop or a restart;
//   - GET /v1/orders, /v1/positions, /v1/fills and /v1/equity every two seconds and at once after
//     an event that changes them.
// Everything shown is data: the DOM is built with createElement and textContent only.
"use strict";

(() => {
  const TOKEN_KEY = "gateway.token";
  const STATUS_EVERY_MS = 1000;
  const TABLES_EVERY_MS = 2000;
  const KEEP_ROWS = 50;
  const API_TIMEOUT_MS = 4000;
  const CONTROL_TIMEOUT_MS = 30000;
  const OPEN = new Set(["new", "accepted", "partially_filled", "pending_cancel", "pending_submit"]);
  const STATE_TEXT = { active: "ACTIVE", reduce_only: "REDUCE ONLY", halted: "HALTED" };

  const $ = (sel) => document.querySelector(sel);
  const byTest = (id) => document.querySelector(`[data-testid="${id}"]`);

  let token = sessionStorage.getItem(TOKEN_KEY);
  let status = null;            // the last GET /v1/status
  let orders = new Map();       // client_order_id -> Order (open ones)
  let positions = [];
  let equity = null;            // the last GET /v1/equity
  let decisions = [];           // latest first
  let fills = [];               // latest first
  let lastEventId = null;       // the stream's last id, to resume from
  let session = 0;              // bumped at sign-out: loops of an old session stop
  let connected = false;
  let stream = "connecting";    // the event stream: connecting | up | down | absent
  let failingSince = null;
  let refreshTimer = null;
  let streamAbort = null;       // aborts the open event stream (at sign-out)

  // --- small helpers -------------------------------------------------------------------------

  function el(tag, text, cls) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  }

  function num(value, digits = 2) {
    if (value === null || value === undefined || value === "") return "–";
    const n = Number(value);
    if (!Number.isFinite(n)) return String(value);
    return n.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
  }

  function qty(value) {
    const n = Number(value);
    return Number.isFinite(n) ? n.toLocaleString("en-US", { maximumFractionDigits: 8 }) : String(value);
  }

  function pct(fraction, digits = 2) {
    if (fraction === null || fraction === undefined) return "–";
    return `${(Number(fraction) * 100).toFixed(digits)}%`;
  }

  function clock(iso) {
    if (!iso) return "–";
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return String(iso);
    return `${d.toISOString().slice(11, 19)} UTC`;
  }

  function short(id) {
    const s = String(id);
    return s.length > 14 ? `…${s.slice(-12)}` : s;
  }

  function duration(seconds) {
    const s = Math.max(0, Math.ceil(seconds));
    const m = Math.floor(s / 60);
    return m > 0 ? `${m}m ${String(s % 60).padStart(2, "0")}s` : `${s}s`;
  }

  function fillTable(testid, rows, emptyText, columns) {
    const body = byTest(testid).querySelector("tbody");
    const out = [];
    for (const row of rows) out.push(row);
    if (out.length === 0) {
      const tr = el("tr");
      const td = el("td", emptyText, "empty");
      td.colSpan = columns;
      tr.append(td);
      out.push(tr);
    }
    body.replaceChildren(...out);
  }

  function row(cells) {
    const tr = el("tr");
    for (const cell of cells) {
      if (cell instanceof Node) tr.append(cell);
      else {
        const [text, cls, title] = Array.isArray(cell) ? cell : [cell, ""];
        const td = el("td", text, cls);
        if (title) td.title = title;
        tr.append(td);
      }
    }
    return tr;
  }

  // --- the API -------------------------------------------------------------------------------

  class Refused extends Error {
    constructor(status, body) {
      super(describeError(status, body));
      this.status = status;
      this.body = body;
    }
  }

  function describeError(code, body) {
    if (body && typeof body === "object") {
      if (body.code && body.message) return `${body.code}: ${body.message}`;
      if (typeof body.detail === "string") return `${code}: ${body.detail}`;
      if (body.code) return String(body.code);
    }
    return `HTTP ${code}`;
  }

  async function api(method, path, body) {
    const headers = { Authorization: `Bearer ${token}` };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
      // A gateway that stops answering (not only one that refuses connections) shows as
      // disconnected within seconds. The kill switch may take longer: it waits for the broker.
      signal: AbortSignal.timeout(method === "GET" ? API_TIMEOUT_MS : CONTROL_TIMEOUT_MS),
    });
    let data = null;
    try {
      data = await response.json();
    } catch (_) {
      data = null;
    }
    if (response.status === 401) {
      const why = data && typeof data.detail === "string" ? ` (${data.detail})` : "";
      signOut(`The gateway refused this token: wrong or expired${why}. Sign in again.`);
      throw new Refused(401, data);
    }
    if (!response.ok) throw new Refused(response.status, data);
    return data;
  }

  // --- sign-in -------------------------------------------------------------------------------

  function showSignIn(message) {
    $("#app").hidden = true;
    $("#sign-out").hidden = true;
    $("#signin").hidden = false;
    byTest("sign-in-message").textContent = message || "";
    setLink("idle", "not signed in");
    byTest("token-input").focus();
  }

  function signOut(message) {
    session += 1;
    if (streamAbort) streamAbort.abort();
    token = null;
    sessionStorage.removeItem(TOKEN_KEY);
    status = null;
    orders = new Map();
    positions = [];
    decisions = [];
    fills = [];
    equity = null;
    lastEventId = null;
    showSignIn(message);
  }

  async function signIn(candidate) {
    token = candidate;
    const mine = ++session;
    try {
      status = await api("GET", "/v1/status");
    } catch (err) {
      if (mine !== session) return; // a 401 signed out already, with its message
      token = null;
      showSignIn(err instanceof Refused ? `Sign-in failed: ${err.message}` : "Cannot reach the gateway.");
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, candidate);
    $("#signin").hidden = true;
    $("#app").hidden = false;
    $("#sign-out").hidden = false;
    byTest("token-input").value = "";
    connected = true;
    stream = "connecting";
    showLink();
    renderStatus();
    renderTables();
    pollStatus(mine);
    pollTables(mine);
    followEvents(mine);
  }

  // --- connection ------------------------------------------------------------------------------

  function setLink(state, text) {
    const link = byTest("connection");
    link.dataset.state = state;
    link.textContent = text;
  }

  function markUp() {
    failingSince = null;
    if (!connected) {
      connected = true;
      refreshSoon(0);
    }
    showLink();
    $("#banner").classList.remove("stale");
  }

  function showLink() {
    if (!connected) return;
    const note = { up: "", absent: " (polling)", down: " (event stream reconnecting)", connecting: "" };
    setLink("live", `live${note[stream] || ""}`);
  }

  function setStream(state) {
    stream = state;
    showLink();
  }

  function markDown() {
    if (failingSince === null) failingSince = Date.now();
    connected = false;
    setLink("disconnected", "disconnected: retrying");
    $("#banner").classList.add("stale");
  }

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  async function pollStatus(mine) {
    while (mine === session) {
      try {
        const started = Date.now();
        status = await api("GET", "/v1/status");
        if (mine !== session) return;
        markUp();
        renderStatus();
        await sleep(Math.max(0, STATUS_EVERY_MS - (Date.now() - started)));
      } catch (err) {
        if (mine !== session) return;
        if (!(err instanceof Refused)) markDown();
        await sleep(STATUS_EVERY_MS);
      }
    }
  }

  let statusBusy = false;
  let statusAgain = false;

  async function statusNow() {
    if (statusBusy) {
      statusAgain = true;
      return;
    }
    statusBusy = true;
    const mine = session;
    try {
      do {
        statusAgain = false;
        const fresh = await api("GET", "/v1/status");
        if (mine !== session) return;
        status = fresh;
        renderStatus();
      } while (statusAgain);
    } catch (_) {
      // the poll says whether the gateway is gone
    } finally {
      statusBusy = false;
    }
  }

  async function pollTables(mine) {
    while (mine === session) {
      await refreshTables(mine);
      await new Promise((resolve) => {
        refreshTimer = setTimeout(resolve, TABLES_EVERY_MS);
        refreshNow = resolve;
      });
    }
  }

  let refreshNow = () => {};
  let refreshPending = false;

  function refreshSoon(ms = 100) {
    if (refreshPending) return;
    refreshPending = true;
    setTimeout(() => {
      refreshPending = false;
      clearTimeout(refreshTimer);
      refreshNow();
    }, ms);
  }

  async function refreshTables(mine) {
    const reads = [
      api("GET", "/v1/orders").then((list) => {
        orders = new Map(list.map((o) => [o.client_order_id, o]));
      }),
      api("GET", "/v1/positions").then((list) => {
        positions = list;
      }),
      api("GET", "/v1/equity").then((data) => {
        equity = data;
      }),
      api("GET", "/v1/fills").then((list) => {
        if (Array.isArray(list)) fills = list.slice(-KEEP_ROWS).reverse();
      }),
    ];
    const results = await Promise.allSettled(reads);
    if (mine !== session) return;
    if (results.some((r) => r.status === "fulfilled")) renderTables();
  }

  // --- the event stream ----------------------------------------------------------------------

  async function followEvents(mine) {
    let backoff = 500;
    while (mine === session) {
      const controller = new AbortController();
      streamAbort = controller;
      try {
        const headers = { Authorization: `Bearer ${token}`, Accept: "text/event-stream" };
        // The first connection replays the journal's events (the last decisions and fills);
        // later ones resume after the last id seen, so nothing is missed or seen twice.
        let path = "/v1/events?after=0";
        if (lastEventId !== null) headers["Last-Event-ID"] = lastEventId;
        if (lastEventId !== null) path = "/v1/events";
        const response = await fetch(path, { headers, signal: controller.signal, cache: "no-store" });
        if (response.status === 401) {
          signOut("The gateway refused this token: wrong or expired. Sign in again.");
          return;
        }
        if (response.status === 404) {
          // A gateway without the event stream: the polls alone keep the page current.
          setStream("absent");
          await sleep(30000);
          continue;
        }
        if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
        setStream("up");
        backoff = 500;
        await readStream(response.body, mine);
      } catch (_) {
        // Whether the gateway is gone is the status poll's to say (within a second); a stream
        // that drops while the gateway answers is said beside "live", and tried again.
        if (mine !== session) return;
        setStream("down");
      } finally {
        controller.abort();
      }
      await sleep(backoff);
      backoff = Math.min(backoff * 2, 2000);  // back within 2 s of a restarted gateway
    }
  }

  async function readStream(body, mine) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    let event = { id: null, type: "message", data: [] };
    try {
      while (mine === session) {
        const { value, done } = await reader.read();
        if (done) throw new Error("stream ended");
        buffer += value;
        let newline;
        while ((newline = buffer.search(/\r\n|\r|\n/)) >= 0) {
          const line = buffer.slice(0, newline);
          buffer = buffer.slice(newline + (buffer.startsWith("\r\n", newline) ? 2 : 1));
          if (line === "") {
            if (event.data.length > 0) dispatch(event);
            event = { id: event.id, type: "message", data: [] };
            continue;
          }
          if (line.startsWith(":")) continue; // keepalive
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          let val = colon < 0 ? "" : line.slice(colon + 1);
          if (val.startsWith(" ")) val = val.slice(1);
          if (field === "id") event.id = val;
          else if (field === "event") event.type = val;
          else if (field === "data") event.data.push(val);
        }
      }
    } finally {
      reader.cancel().catch(() => {});
    }
  }

  let renderQueued = false;

  function dispatch(event) {
    if (event.id !== null) lastEventId = event.id;
    let data;
    try {
      data = JSON.parse(event.data.join("\n"));
    } catch (_) {
      return;
    }
    if (event.type === "decision") {
      decisions.unshift(data);
      if (decisions.length > KEEP_ROWS) decisions.length = KEEP_ROWS;
      refreshSoon();
    } else if (event.type === "order") {
      if (OPEN.has(data.status)) orders.set(data.client_order_id, data);
      else orders.delete(data.client_order_id);
      refreshSoon();
    } else if (event.type === "fill") {
      if (!fills.some((f) => f.fill_id === data.fill_id)) fills.unshift(data);
      if (fills.length > KEEP_ROWS) fills.length = KEEP_ROWS;
      refreshSoon();
    } else if (event.type === "state") {
      // Not applied as such: a replay from the start carries every old state too. The status
      // is the truth; ask it now.
      statusNow();
      refreshSoon(0);
    }
    if (!renderQueued) {
      renderQueued = true;
      requestAnimationFrame(() => {
        renderQueued = false;
        renderTables();
      });
    }
  }

  // --- rendering: state, risk, strip -----------------------------------------------------------

  function renderStatus() {
    if (!status) return;
    const banner = $("#banner");
    banner.dataset.state = status.state;
    byTest("state").textContent = STATE_TEXT[status.state] || String(status.state).toUpperCase();
    const halt = status.halt;
    $("#halt-details").hidden = !halt;
    if (halt) {
      byTest("halt-reason").textContent = halt.reason;
      byTest("halt-trigger").textContent = halt.kill_switch ? `${halt.trigger} (kill switch)` : halt.trigger;
      byTest("halt-since").textContent = clock(halt.since);
    }
    renderCooldown();
    const reduce = byTest("reduce-only-reason");
    reduce.hidden = status.state !== "reduce_only";
    reduce.textContent = status.reduce_only ? `Only orders that shrink a position: ${status.reduce_only}` : "";

    const risk = status.risk || {};
    const limits = status.limits || {};
    for (const node of document.querySelectorAll(".measure")) {
      renderMeasure(node, risk[node.dataset.measure], limits[node.dataset.measure]);
    }
    byTest("equity").textContent = num(risk.equity);

    const broker = status.broker || {};
    const b = byTest("broker");
    b.textContent = `${broker.name || "?"} ${broker.connected ? "connected" : "DISCONNECTED"}`;
    b.className = broker.connected ? "" : "bad";
    const stale = (status.quotes && status.quotes.stale) || [];
    const q = byTest("quotes");
    q.textContent = stale.length ? `stale: ${stale.join(", ")}` : "fresh";
    q.className = stale.length ? "bad" : "";
    const journal = status.journal || {};
    const j = byTest("journal");
    j.textContent = journal.writable === false ? `NOT WRITABLE: ${journal.error || ""}` : "writable";
    j.className = journal.writable === false ? "bad" : "";
    byTest("open-count").textContent = status.orders ? String(status.orders.open) : "–";
    byTest("mode").textContent = status.mode || "–";
    byTest("updated").textContent = `updated ${new Date().toISOString().slice(11, 19)} UTC`;

    const failures = status.failures || {};
    byTest("failures-total").textContent = `${failures.consecutive || 0} in a row of ${failures.threshold || "?"} · total ${failures.total || 0}`;
    const inARow = failures.consecutive_by_strategy || {};
    const total = failures.by_strategy || {};
    const names = [...new Set([...Object.keys(inARow), ...Object.keys(total)])].sort();
    fillTable(
      "failures",
      names.map((name) => row([name, [num(inARow[name] || 0, 0), "n"], [num(total[name] || 0, 0), "n"]])),
      "no failures",
      3,
    );
  }

  function renderCooldown() {
    const when = byTest("resume-when");
    const halt = status && status.halt;
    if (!halt) {
      when.textContent = "";
      byTest("resume-button").textContent = "Resume";
      return;
    }
    const left = (new Date(halt.resume_allowed_at).getTime() - Date.now()) / 1000;
    if (left > 0) {
      when.textContent = `cooldown: ${duration(left)} left (from ${clock(halt.resume_allowed_at)}), admin token`;
      byTest("resume-button").textContent = `Resume (${duration(left)})`;
    } else {
      when.textContent = "possible now with the admin token (the trigger must be back under its emergency threshold)";
      byTest("resume-button").textContent = "Resume";
    }
  }

  function renderMeasure(node, value, limits) {
    const v = Number(value || 0);
    const limit = limits ? Number(limits.limit) : null;
    const emergency = limits ? Number(limits.emergency) : null;
    const scale = Math.max(emergency || 0, limit || 0, v) * 1.15 || 1;
    const at = (x) => `${Math.min(100, (x / scale) * 100)}%`;
    node.querySelector(".mval").textContent = value === undefined ? "–" : pct(v);
    node.querySelector(".fill").style.width = at(Math.max(0, v));
    const tl = node.querySelector(".tick.limit");
    const te = node.querySelector(".tick.emergency");
    tl.hidden = limit === null;
    te.hidden = emergency === null;
    if (limit !== null) tl.style.left = at(limit);
    if (emergency !== null) te.style.left = at(emergency);
    node.dataset.level = emergency !== null && v >= emergency ? "emergency" : limit !== null && v >= limit ? "limit" : "ok";
    node.querySelector(".mlimits").textContent = limits
      ? `limit ${pct(limit)} · emergency ${pct(emergency)}`
      : "limits not reported by this gateway";
  }

  // --- rendering: tables and chart -----------------------------------------------------------

  function stopFor(position) {
    // A live stop on the other side of the position (a bracket's stop-loss leg or a stop order).
    const closing = Number(position.qty) > 0 ? "sell" : "buy";
    for (const o of orders.values()) {
      if (o.symbol === position.symbol && o.side === closing && o.stop_price !== undefined && o.stop_price !== null) {
        return Number(o.stop_price);
      }
    }
    return null;
  }

  function renderTables() {
    const risk = (status && status.risk) || {};
    const eq = Number(risk.equity || 0);
    const slp = status && status.limits ? Number(status.limits.stop_loss_percent) : null;
    fillTable(
      "positions",
      positions
        .filter((p) => Number(p.qty) !== 0)
        .map((p) => {
          const q = Number(p.qty);
          const mark = p.market_price === null ? null : Number(p.market_price);
          const pnl = mark === null ? null : (mark - Number(p.avg_price)) * q;
          // The gateway's own account of the cover (status.protection), else the open stops.
          const cover = ((status && status.protection) || []).find((c) => c.symbol === p.symbol);
          let stopText = "none";
          let r = null;
          if (cover) {
            const prices = (cover.stop_prices || []).map((x) => num(x)).join(", ");
            if (prices) stopText = cover.protected ? prices : `${prices} (${qty(cover.protected_qty)} of ${qty(Math.abs(q))})`;
            if (eq > 0) r = Number(cover.at_risk) / eq;
          } else {
            const stop = stopFor(p);
            if (stop !== null) stopText = num(stop);
            if (eq > 0 && mark !== null) {
              if (stop !== null) r = (Math.abs(q) * Math.abs(mark - stop)) / eq;
              else if (slp !== null) r = (Math.abs(q) * mark * slp) / eq;
            }
          }
          return row([
            p.symbol,
            [qty(q), `n ${q > 0 ? "buy" : "sell"}`],
            [num(p.avg_price), "n"],
            [num(mark), "n"],
            [num(pnl), `n ${pnl > 0 ? "pos" : pnl < 0 ? "neg" : ""}`],
            [stopText, stopText === "none" ? "n warn" : "n"],
            [r === null ? "–" : pct(r), "n"],
          ]);
        }),
      "no positions",
      7,
    );

    fillTable(
      "open-orders",
      [...orders.values()]
        .filter((o) => OPEN.has(o.status))
        .map((o) => {
          const cancel = el("button", "Cancel", "cancel");
          cancel.type = "button";
          cancel.dataset.testid = "cancel-order";
          cancel.dataset.orderId = o.client_order_id;
          cancel.addEventListener("click", () => cancelOrder(o.client_order_id, cancel));
          const td = el("td");
          td.append(cancel);
          const price = o.limit_price ?? o.stop_price ?? null;
          return row([
            [short(o.client_order_id), "mono", o.client_order_id],
            o.strategy || "–",
            o.symbol,
            [o.side, o.side],
            [qty(o.quantity), "n"],
            o.order_type || "–",
            [price === null ? "market" : num(price), "n"],
            o.status,
            td,
          ]);
        }),
      "no open orders",
      9,
    );

    fillTable(
      "decisions",
      decisions.map((d) => {
        const o = d.order;
        const badge = el("span", d.decision, `badge ${d.decision}`);
        const tdDecision = el("td");
        tdDecision.append(badge);
        const tdReasons = el("td", null, "wrap");
        for (const r of d.reasons || []) {
          const line = el("span", null, "reason");
          line.append(el("code", r.code), document.createTextNode(r.message || ""));
          tdReasons.append(line);
        }
        return row([
          clock(d.at || (o && o.created_at) || (o && o.quote_time)),
          [d.signal_id, "mono wrap"],
          o ? `${o.side} ${qty(o.quantity)} ${o.symbol} @ ${num(o.price)}` : "–",
          tdDecision,
          tdReasons,
        ]);
      }),
      "no decisions yet",
      5,
    );

    fillTable(
      "fills",
      fills.map((f) =>
        row([clock(f.ts), f.strategy || "–", f.symbol, [f.side, f.side], [qty(f.quantity), "n"], [num(f.price), "n"]]),
      ),
      "no fills yet",
      6,
    );
    renderChart();
  }

  const SVG = "http://www.w3.org/2000/svg";

  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function renderChart() {
    const box = byTest("equity-chart");
    const risk = (status && status.risk) || {};
    const points = ((equity && equity.points) || []).map((p) => [new Date(p.at).getTime(), Number(p.equity)]);
    const now = Date.now();
    if (risk.equity !== undefined) points.push([now, Number(risk.equity)]);
    const dayStart = risk.day_start_equity ?? (equity && equity.day_start_equity);
    const peak = risk.peak_equity ?? (equity && equity.peak_equity);
    if (points.length === 0) {
      box.replaceChildren(el("div", "no equity yet", "empty"));
      return;
    }
    const W = Math.max(300, box.clientWidth || 600);
    const H = Math.max(120, box.clientHeight || 190);
    const padL = 8, padR = 130, padT = 10, padB = 20;
    const t0 = Math.min(points[0][0], equity && equity.day_start ? new Date(equity.day_start).getTime() : now - 60000);
    const t1 = Math.max(now, t0 + 1000);
    const values = points.map((p) => p[1]);
    if (dayStart !== undefined && dayStart !== null) values.push(Number(dayStart));
    if (peak !== undefined && peak !== null) values.push(Number(peak));
    let lo = Math.min(...values), hi = Math.max(...values);
    const pad = Math.max((hi - lo) * 0.1, Math.abs(hi) * 0.001, 1);
    lo -= pad;
    hi += pad;
    const x = (t) => padL + ((t - t0) / (t1 - t0)) * (W - padL - padR);
    const y = (v) => padT + (1 - (v - lo) / (hi - lo)) * (H - padT - padB);

    const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "equity today" });
    const mark = (value, color, label) => {
      if (value === undefined || value === null) return;
      const yy = y(Number(value));
      root.append(svg("line", { x1: padL, x2: W - padR, y1: yy, y2: yy, stroke: color, "stroke-dasharray": "5 4", "stroke-width": 1.2 }));
      root.append(svg("text", { x: W - padR + 6, y: yy + 4, fill: color, "font-size": 12 }, `${label} ${num(value, 0)}`));
    };
    if (peak !== undefined && peak !== null && Number(peak) === Number(dayStart)) {
      mark(peak, "#4aa3ff", "start = peak");
    } else {
      mark(dayStart, "#a9b4c2", "start");
      mark(peak, "#4aa3ff", "peak");
    }
    let d = "";
    points.forEach(([t, v], i) => {
      // A step line: equity holds its value until the next point.
      if (i === 0) d += `M${x(t).toFixed(1)},${y(v).toFixed(1)}`;
      else d += `H${x(t).toFixed(1)}V${y(v).toFixed(1)}`;
    });
    const last = points[points.length - 1][1];
    const color = dayStart !== undefined && dayStart !== null && last < Number(dayStart) ? "#ff6b6b" : "#6fdc9c";
    root.append(svg("path", { d, fill: "none", stroke: color, "stroke-width": 2.2 }));
    root.append(svg("circle", { cx: x(points[points.length - 1][0]), cy: y(last), r: 3.5, fill: color }));
    root.append(svg("text", { x: padL, y: H - 4, fill: "#8b97a6", "font-size": 11 }, clock(new Date(t0).toISOString())));
    root.append(svg("text", { x: W - padR, y: H - 4, fill: "#8b97a6", "font-size": 11, "text-anchor": "end" }, "now"));
    box.replaceChildren(root);
  }

  // --- controls ------------------------------------------------------------------------------

  function say(text, bad) {
    const node = byTest("control-message");
    node.textContent = text;
    node.classList.toggle("bad", Boolean(bad));
  }

  async function act(label, run) {
    try {
      const text = await run();
      say(text, false);
    } catch (err) {
      say(`${label} refused: ${err instanceof Refused ? err.message : "the gateway did not answer"}`, true);
    }
    refreshSoon(0);
  }

  function openHaltForm() {
    $("#halt-form").hidden = false;
    byTest("halt-reason-input").focus();
  }

  async function halt(event) {
    event.preventDefault();
    const input = byTest("halt-reason-input");
    const reason = input.value.trim();
    if (!reason) return;
    await act("Halt", async () => {
      status = await api("POST", "/v1/halt", { reason });
      renderStatus();
      input.value = "";
      $("#halt-form").hidden = true;
      return "Halted.";
    });
  }

  async function kill() {
    const ok = window.confirm(
      "KILL SWITCH: halt trading and cancel every open order at the broker.\n\nContinue?",
    );
    if (!ok) {
      say("Kill not sent.", false);
      return;
    }
    const typed = byTest("halt-reason-input").value.trim();
    await act("Kill", async () => {
      const report = await api("POST", "/v1/kill", { reason: typed || "kill switch from the operator page" });
      status = report.status || status;
      renderStatus();
      const failed = (report.failed || []).map((f) => `${f.order_id}: ${f.reason}`);
      return `Killed: ${report.cancelled} order(s) cancelled, ${failed.length} failed${failed.length ? ` (${failed.join("; ")})` : ""}.`;
    });
  }

  async function resume() {
    await act("Resume", async () => {
      status = await api("POST", "/v1/resume", {});
      renderStatus();
      return `Resumed: ${STATE_TEXT[status.state] || status.state}.`;
    });
  }

  async function cancelOrder(id, button) {
    button.disabled = true;
    await act(`Cancel ${id}`, async () => {
      const order = await api("DELETE", `/v1/orders/${encodeURIComponent(id)}`);
      return `Order ${id}: ${order && order.status ? order.status : "cancel sent"}.`;
    });
    button.disabled = false;
  }

  // --- wiring --------------------------------------------------------------------------------

  document.addEventListener("DOMContentLoaded", () => {
    $("#signin-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const value = byTest("token-input").value.trim();
      if (value) signIn(value);
    });
    $("#sign-out").addEventListener("click", () => signOut("Signed out."));
    byTest("halt-button").addEventListener("click", openHaltForm);
    $("#halt-form").addEventListener("submit", halt);
    $("#halt-cancel").addEventListener("click", () => {
      $("#halt-form").hidden = true;
    });
    byTest("kill-button").addEventListener("click", kill);
    byTest("resume-button").addEventListener("click", resume);
    setInterval(() => {
      if (status) renderCooldown();
      if (failingSince !== null && token) setLink("disconnected", `disconnected ${duration((Date.now() - failingSince) / 1000)}: retrying`);
    }, 1000);
    window.addEventListener("resize", () => renderChart());
    if (token) signIn(token);
    else showSignIn("");
  });
})();

// The per-agent page: cold load from api/state + events/history, then events/stream (SSE,
// resumed after the newest seq shown). The daemon serves all of it; the harness only supplies
// data, which reaches the DOM as text or through HiveRender (docs/web-ui.md, "The agent page").
(function () {
  "use strict";
  const R = window.HiveRender;
  const $ = (id) => document.getElementById(id);
  const name = decodeURIComponent(location.pathname.split("/")[2] || "");
  const base = "/agent/" + encodeURIComponent(name) + "/";
  const term = window.HiveTerminal.create({ el: $("term") });
  const ctx = window.HiveRows.context();
  const seen = { min: null, max: 0 };
  let badgeTimer = null;
  let sideTimer = null;
  let stream = null;
  // Whether its container runs, as the last api/state said (null: not known yet), and whether
  // the event stream last said its harness is down: a stopped agent's harness is not there,
  // which is no error; a running agent's harness that cannot be reached is one.
  let running = null;
  let harnessDown = null;
  document.title = name + " · hyperhive";
  $("agent-name").textContent = name;

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === "class") node.className = value;
      else if (value !== undefined && value !== null && value !== false) node.setAttribute(key, String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      node.appendChild(typeof child === "string" || typeof child === "number" ? R.text(child) : child);
    }
    return node;
  }
  function toast(text) {
    const box = $("toast"); box.textContent = text; box.hidden = false;
    clearTimeout(toast.timer); toast.timer = setTimeout(() => { box.hidden = true; }, 6000);
  }
  async function getJSON(path) {
    const response = await fetch(path, { credentials: "same-origin" });
    const answer = await response.json().catch(() => ({ ok: false, error: "HTTP " + response.status }));
    if (!answer.ok) throw new Error(answer.error || "HTTP " + response.status);
    return answer;
  }
  async function post(path, body) {
    const response = await fetch(path, {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body || {}), credentials: "same-origin",
    });
    const answer = await response.json().catch(() => ({ ok: false, error: "HTTP " + response.status }));
    if (!answer.ok) throw new Error(answer.error || "HTTP " + response.status);
    return answer;
  }
  function setChip(id, text, kind) {
    const chip = $(id);
    chip.textContent = text;
    chip.className = "chip " + (kind || "dim");
  }
  function tokens(n) { return n >= 1000 ? (n / 1000).toFixed(1) + "k" : String(n); }

  // -- badges ------------------------------------------------------------------------------------
  const LIVE_CONTROLS = ["c-cancel", "c-compact", "c-new", "model-apply"];
  // A stopped agent is a normal state: the page says so where its live parts would be, and
  // disables its controls, instead of reporting its absent harness as an error. A harness that
  // answers anyway (its page socket served while the container is stopped) is shown as is.
  function paintRunning(answer) {
    const view = answer.container;
    running = Boolean(view && (view.state === "running" || view.state === "starting"));
    const note = $("not-running");
    note.hidden = running || Boolean(answer.harness);
    note.className = "notice" + (view && view.state === "crashed" ? " bad" : "");
    if (!note.hidden) note.textContent = notRunning(view, answer);
    for (const id of LIVE_CONTROLS) $(id).disabled = !running && !answer.harness;
    paintConn();
  }
  function notRunning(view, answer) {
    const later = "; its terminal and controls come back when it runs (start it from the dashboard, or `hyperhive start " + name + "`)";
    if (!view) return name + " has no container";
    if (view.state === "crashed") return name + " " + (answer.semantic === "start refused" ? "could not start" : "crashed") + (answer.reason ? ": " + answer.reason : "") + later;
    if (view.state === "absent") return name + " has no container here (the daemon runs none)";
    return name + " is " + view.state + later;
  }
  function paintConn() {
    if (harnessDown === null) return;
    if (!harnessDown) setChip("conn", "live", "ok");
    else if (running === false) setChip("conn", "not running", "dim");
    else setChip("conn", "harness down", "bad");
  }
  function historyFailed(err) {
    if (running !== false) toast("history: " + err.message);  // a stopped agent has none to serve
  }
  function paintBadges(answer) {
    paintRunning(answer);
    const view = answer.container;
    setChip("b-container", view ? view.state + (view.transient ? " (" + view.transient + "…)" : "") : "no container",
      view && view.state === "running" ? "ok" : view && view.state === "crashed" ? "bad" : "dim");
    const h = answer.harness;
    if (!h) {
      setChip("b-harness", running ? "harness unreachable" : "harness not running", running ? "bad" : "dim");
      $("b-harness").title = answer.harness_error || "";
      const fallback = R.doing(answer.semantic, answer.reason);
      setChip("b-activity", fallback.text, fallback.kind);
      $("b-activity").title = answer.reason || "";
      // A login goes to the harness: a stopped agent's page offers none (its sentinel is old).
      showLogin(Boolean(running && view && view.needs_login), null);
      $("logout-panel").hidden = true;
      return;
    }
    setChip("b-harness", "harness alive", "ok");
    $("b-harness").title = "runtime " + h.runtime;
    const act = R.doing(answer.semantic, answer.reason);
    setChip("b-activity", act.text, act.kind);
    $("b-activity").dataset.semantic = act.word;
    $("b-activity").title = answer.reason || "";
    setChip("b-model", "model " + (h.model || "default"), "dim");
    const ctxText = h.ctx === null || h.ctx === undefined ? "ctx ?" :
      "ctx " + tokens(h.ctx) + (h.context_window ? " / " + tokens(h.context_window) : "");
    setChip("b-ctx", ctxText, h.context_window && h.ctx > 0.8 * h.context_window ? "warn" : "dim");
    setChip("b-cost", h.cost_usd === null || h.cost_usd === undefined ? "cost ?" : "cost $" + h.cost_usd.toFixed(4), "dim");
    showLogin(h.logged_in === false || h.report.state === "needs_login", h.login);
    $("logout-panel").hidden = !(h.logged_in === true && h.report.state !== "needs_login");
  }
  async function refreshBadges() {
    try { paintBadges(await getJSON(base + "api/state")); }
    catch (err) { setChip("b-harness", "page error", "bad"); $("b-harness").title = err.message; }
  }
  function soonBadges() { clearTimeout(badgeTimer); badgeTimer = setTimeout(refreshBadges, 150); }
  // At most one reload of the inbox and loose ends waits: a burst of events is one reload, and
  // a steady stream of them cannot keep postponing it.
  function soonSide() {
    if (sideTimer === null) sideTimer = setTimeout(() => { sideTimer = null; refreshSide(); }, 300);
  }

  // -- the terminal --------------------------------------------------------------------------------
  const BADGE_KINDS = new Set(["state", "turn_started", "turn_ended", "usage", "model", "rate_limited",
    "rate_limit_cleared", "backing_off", "needs_login", "logged_in", "claude", "started", "note"]);
  function add(event) {
    if (typeof event.seq !== "number") return;
    if (term.has(event.seq + ".0") || term.has(event.seq + ".none")) return;
    const rows = window.HiveRows.render(event, ctx);
    if (!rows.length) term.mark(event.seq + ".none");
    for (const r of rows) term.put(r.key, r.node, r.order);
    seen.max = Math.max(seen.max, event.seq);
    seen.min = seen.min === null ? event.seq : Math.min(seen.min, event.seq);
    const d = event.data || {};
    if (BADGE_KINDS.has(event.kind) || (event.kind === "stream" && (d.type === "assistant" || d.type === "user" || d.type === "system"))) soonBadges();
    if (event.kind === "acked" || event.kind === "turn_started" || event.kind === "turn_ended") soonSide();
  }
  let historyLoaded = false;
  async function loadHistory() {
    const answer = await getJSON(base + "events/history?limit=500");
    for (const event of answer.events) add(event);
    historyLoaded = true;
    term.toBottom();
  }
  async function loadOlder() {
    if (seen.min === null || seen.min <= 1) { toast("nothing earlier"); return; }
    const answer = await getJSON(base + "events/history?limit=500&before_seq=" + seen.min);
    if (!answer.events.length) { toast("nothing earlier is kept"); return; }
    // Older rows render before newer ones; a tool result earlier than its call is still a row.
    for (const event of answer.events) add(event);
  }
  function connect() {
    if (stream) stream.close();
    stream = new EventSource(base + "events/stream?last_event_id=" + seen.max);
    stream.onmessage = (message) => {
      let event;
      try { event = JSON.parse(message.data); } catch (err) { return; }
      if (event.kind === "hello") { setChip("conn", "live", "ok"); return; }
      if (event.kind === "harness_up") {
        harnessDown = false; paintConn(); soonBadges(); soonSide();
        // A harness that was not up at the cold load: its stored events come now.
        if (!historyLoaded) loadHistory().catch(historyFailed);
        return;
      }
      if (event.kind === "harness_down") { harnessDown = true; paintConn(); $("conn").title = String(event.error || ""); soonBadges(); return; }
      add(event);
    };
    stream.onerror = () => { setChip("conn", "reconnecting…", "warn"); };
  }

  // -- steering ------------------------------------------------------------------------------------
  function control(button, path, body) {
    button.disabled = true;
    post(base + path, body).catch((err) => toast(err.message)).finally(() => { button.disabled = false; });
  }
  $("c-cancel").addEventListener("click", () => control($("c-cancel"), "api/cancel"));
  $("c-compact").addEventListener("click", () => control($("c-compact"), "api/compact"));
  $("c-new").addEventListener("click", () => control($("c-new"), "api/new-session"));
  $("model-form").addEventListener("submit", (e) => {
    e.preventDefault();
    control($("model-apply"), "api/model", { model: $("model-input").value.trim() });
  });
  $("older").addEventListener("click", () => loadOlder().catch((err) => toast(err.message)));

  // -- login ---------------------------------------------------------------------------------------
  function showLogin(needed, flow) {
    $("login-panel").hidden = !needed && !(flow && flow.status !== "idle" && flow.status !== "done");
    if (!flow) return;
    const box = $("login-flow");
    box.replaceChildren();
    if (flow.status === "idle") return;
    box.appendChild(el("div", null, "status: " + flow.status + (flow.detail ? " · " + flow.detail : "")));
    if (flow.url) {
      let link = null;
      try {
        const url = new URL(flow.url);
        // The address comes from the agent's sandbox: a link only to Anthropic's own hosts.
        if (url.protocol === "https:" && /(^|\.)(claude\.ai|anthropic\.com|claude\.com)$/.test(url.hostname)) {
          link = el("a", { href: url.href, target: "_blank", rel: "noopener noreferrer" }, "open the login page");
        }
      } catch (err) { link = null; }
      box.appendChild(el("div", null, el("code", { class: "url" }, flow.url)));
      if (link) box.appendChild(link);
    }
    $("login-code-form").hidden = flow.status !== "waiting_code";
  }
  for (const tab of document.querySelectorAll(".tabs button")) {
    tab.addEventListener("click", () => {
      for (const t of document.querySelectorAll(".tabs button")) t.classList.toggle("active", t === tab);
      for (const pane of document.querySelectorAll("#login-panel .tab")) pane.hidden = pane.dataset.tab !== tab.dataset.tab;
    });
  }
  function loginError(err) { const box = $("login-error"); box.textContent = err ? err.message : ""; box.hidden = !err; }
  $("login-token").addEventListener("submit", (e) => {
    e.preventDefault();
    post(base + "login/token", { value: $("token-text").value })
      .then(() => { $("token-text").value = ""; loginError(null); toast("token stored; the agent checks it now"); soonBadges(); })
      .catch(loginError);
  });
  $("login-key").addEventListener("submit", (e) => {
    e.preventDefault();
    post(base + "login/api-key", { value: $("key-text").value })
      .then(() => { $("key-text").value = ""; loginError(null); toast("key stored; the agent checks it now"); soonBadges(); })
      .catch(loginError);
  });
  $("login-start").addEventListener("click", () => {
    post(base + "login/start").then((a) => { loginError(null); showLogin(true, a.login); pollFlow(); }).catch(loginError);
  });
  $("login-code-form").addEventListener("submit", (e) => {
    e.preventDefault();
    post(base + "login/code", { code: $("login-code").value })
      .then((a) => { $("login-code").value = ""; showLogin(true, a.login); pollFlow(); }).catch(loginError);
  });
  // Log out: the first click asks, a second within 5 s does it (no dialogs on this page).
  $("logout").addEventListener("click", () => {
    const button = $("logout");
    if (!button.dataset.armed) {
      button.dataset.armed = "1";
      button.textContent = "really log out? click again";
      clearTimeout(button.timer);
      button.timer = setTimeout(() => { delete button.dataset.armed; button.textContent = "log out"; }, 5000);
      return;
    }
    clearTimeout(button.timer);
    delete button.dataset.armed;
    button.textContent = "log out";
    button.disabled = true;
    post(base + "login/logout")
      .then((a) => {
        toast("logged out: " + (a.removed.length ? a.removed.join(", ") + " removed" : "no stored credential") + (a.restarted ? "; it restarts" : ""));
        soonBadges();
      })
      .catch((err) => toast(err.message))
      .finally(() => { button.disabled = false; });
  });
  // While a browser login runs its state lives in the sandbox's claude process: ask until it
  // settles (a few requests, only while the operator is logging in).
  function pollFlow(round) {
    round = round || 0;
    if (round > 120) return;
    setTimeout(async () => {
      try {
        const a = await getJSON(base + "login/state");
        showLogin(a.logged_in === false || (a.login && a.login.status !== "done"), a.login);
        if (a.login && (a.login.status === "starting" || a.login.status === "checking" || a.login.status === "waiting_code")) pollFlow(round + 1);
        else soonBadges();
      } catch (err) { loginError(err); }
    }, 1000);
  }

  // -- inbox and loose ends ------------------------------------------------------------------------
  function mailRow(d, state) {
    return el("div", { class: "mail " + state, "data-id": d.id },
      el("span", { class: "chip " + (state === "inflight" ? "busy" : "dim") }, state === "inflight" ? "in flight" : "pending"),
      el("span", { class: "who" }, " " + d.from), " · ", new Date(d.sent_at * 1000).toLocaleTimeString(),
      d.redelivered ? el("span", { class: "chip warn" }, "redelivered") : null,
      el("div", { class: "text" }, String(d.body).slice(0, 2000)));
  }
  function questionRow(q) {
    const box = el("div", { class: "card question", "data-id": q.id },
      el("div", null, el("span", { class: "name" }, "#" + q.id), " asked ", el("span", { class: "who" }, q.target)),
      el("div", { class: "text" }, q.question));
    if (q.target === "operator") {
      // Answered as the operator, through the operator's endpoint, never the agent's socket.
      const options = el("div", { class: "options" });
      for (const option of q.options || []) {
        const b = el("button", { type: "button" }, option);
        b.addEventListener("click", () => { area.value = option; });
        options.appendChild(b);
      }
      const area = el("textarea", { rows: "2", placeholder: "your answer" });
      const send = el("button", { type: "button", class: "go" }, "answer");
      send.addEventListener("click", () => {
        send.disabled = true;
        post("/answer-question/" + q.id, { answer: area.value })
          .then(() => { toast("answered #" + q.id); soonSide(); })
          .catch((err) => toast(err.message)).finally(() => { send.disabled = false; });
      });
      box.append(options, area, send);
    }
    return box;
  }
  let sideRound = 0;
  async function refreshSide() {
    const round = ++sideRound;
    try {
      const inbox = await getJSON(base + "inbox");
      const loose = (await getJSON(base + "loose-ends")).loose_ends;
      if (round !== sideRound) return;  // a newer reload started: its answer is the one to show
      const rows = [...inbox.inflight.map((d) => mailRow(d, "inflight")), ...inbox.pending.map((d) => mailRow(d, "pending"))];
      $("inbox").replaceChildren(...(rows.length ? rows : [el("p", { class: "muted" }, "no mail waiting")]));
      $("inbox-count").textContent = rows.length ? String(rows.length) : "";
      const items = [
        ...loose.questions.map(questionRow),
        ...loose.reminders.map((r) => el("div", { class: "card reminder", "data-id": r.id }, "⏰ #" + r.id + " ", el("span", { class: "text" }, r.message))),
        ...(loose.approvals || []).map((a) => el("div", { class: "card" }, "approval #" + a.id + " " + a.summary)),
      ];
      $("loose").replaceChildren(...(items.length ? items : [el("p", { class: "muted" }, "nothing open")]));
      $("loose-count").textContent = items.length ? String(items.length) : "";
    } catch (err) { toast(err.message); }
  }

  // The inbox, live: the daemon's event stream kept to this agent's mail, questions and
  // reminders (sent to it, taken, dead-lettered, asked, answered, set, fired). Each frame, and
  // the hello of every (re)connection, reloads the inbox and loose ends from the daemon (whole
  // rows, never the frame's preview); the browser resumes it after its Last-Event-ID.
  // A hidden tab lets go of it (a browser opens about six connections to one host: every
  // open page's streams count) and takes it again, with a reload, when shown.
  let inboxRetry = 2000;
  let mail = null;
  let mailTimer = null;
  function connectInbox() {
    clearTimeout(mailTimer);
    if (mail) mail.close();
    mail = new EventSource(base + "inbox/stream");
    const mine = mail;
    mail.onmessage = () => { inboxRetry = 2000; soonSide(); };
    mail.onerror = () => {
      if (mine !== mail || mine.readyState !== EventSource.CLOSED) return;  // it reconnects itself
      // Refused (too many streams, the daemon restarting): again later, less often each time.
      mailTimer = setTimeout(connectInbox, inboxRetry);
      inboxRetry = Math.min(inboxRetry * 2, 30000);
    };
  }
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "hidden") {
      clearTimeout(mailTimer);
      if (mail) { mail.close(); mail = null; }
    } else if (!mail) {
      connectInbox();
    }
  });

  // -- start -----------------------------------------------------------------------------------------
  if (document.visibilityState === "hidden") refreshSide();
  else connectInbox();  // its hello loads the inbox: no mail can arrive between the load and the stream
  // The badges first: whether the agent runs decides if a history that cannot be had is news.
  refreshBadges().finally(() => loadHistory().catch(historyFailed).finally(connect));
})();

// The dashboard page: first paint from /api/state, then everything from /dashboard/stream.
// No polling. Agent-written text only ever reaches the DOM as text nodes or through
// HiveRender (markdown-it without raw HTML, then DOMPurify). docs/web-ui.md has the contract.
(function () {
  "use strict";
  const R = window.HiveRender;
  const $ = (id) => document.getElementById(id);
  const state = {
    boot: null, seq: 0, ready: false, buffer: [],
    containers: new Map(), tombstones: new Map(), questions: new Map(), dead: new Map(),
    approvals: new Map(), inbox: new Map(), agents: [],
  };
  const flow = window.HiveTerminal.create({ el: $("flow") });
  let stream = null;
  let notify = localStorage.getItem("hh.notify") === "on";

  // -- small DOM helpers (text only) ---------------------------------------------------------
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === "class") node.className = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else if (value !== undefined && value !== null && value !== false) node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      node.appendChild(typeof child === "string" || typeof child === "number" ? R.text(child) : child);
    }
    return node;
  }
  const chip = (text, kind, title) => el("span", { class: "chip " + (kind || ""), title: title }, text);
  const when = (at) => new Date(at * 1000).toLocaleTimeString();
  function bytes(n) {
    if (n === null || n === undefined) return "?";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0; while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
    return n.toFixed(i ? 1 : 0) + " " + units[i];
  }
  function toast(text) {
    const box = $("toast"); box.textContent = text; box.hidden = false;
    clearTimeout(toast.timer); toast.timer = setTimeout(() => { box.hidden = true; }, 6000);
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
  function action(button, path, body) {
    button.disabled = true;
    return post(path, body).catch((err) => { toast(err.message); return null; }).finally(() => { button.disabled = false; });
  }

  // -- containers ------------------------------------------------------------------------------
  const STATE_KIND = { running: "ok", starting: "busy", stopping: "busy", stopped: "dim", crashed: "bad", absent: "dim", unknown: "warn" };
  // What a running agent is doing, in the daemon's word (its reason is the "why" line).
  function live(c) {
    return (c.state === "running" || c.state === "starting") && !c.transient && Boolean(c.semantic);
  }
  function doingChip(c) {
    const shown = R.doing(c.semantic, c.reason);
    const node = chip(shown.word, shown.kind, "what the agent is doing");
    node.classList.add("activity");
    node.dataset.semantic = shown.word;
    return node;
  }
  function saysSo(c, semantic) {
    return live(c) && c.semantic === semantic;
  }
  // How its last turn ended (the harness's report): result, when, how long, what it cost.
  function lastTurnChip(t) {
    const cost = typeof t.cost_usd === "number" ? " · $" + t.cost_usd.toFixed(4) : "";
    const text = "last turn " + t.result + " " + when(t.ended_at) + " (" + (t.duration_ms / 1000).toFixed(1) + " s" + cost + ")";
    const node = chip(text, t.result === "ok" ? "dim" : "warn", t.detail || "the agent's last turn");
    node.classList.add("last-turn");
    return node;
  }
  function containerCard(c) {
    const crashed = c.state === "crashed";
    const title = el("div", { class: "title" },
      el("a", { class: "name", href: "/agent/" + encodeURIComponent(c.name) + "/", title: "open " + c.name + "'s page" }, c.name),
      c.role === "manager" ? chip("manager", "info") : null,
      c.parent ? chip("spawned by " + c.parent, "dim", "created from " + c.parent + "'s approved request") : null,
      c.needs_update ? chip("update pending", "info", "an approved config waits to be deployed") : null,
      chip(c.state, STATE_KIND[c.state] || "", "container state"),
      live(c) ? doingChip(c) : null,
      c.transient ? chip(c.transient + "…", "busy", "operator action in flight") : null,
      chip("wants " + c.wanted, "dim"),
      // The doing chip already says so when it is what the agent is doing: one chip, not two.
      c.paused && !saysSo(c, "paused") ? chip("paused", "warn", "paused by the operator: no turns, its mail waits") : null,
      c.needs_login && !saysSo(c, "needs login") ? chip("needs login", "warn") : null,
      c.rate_limited && !saysSo(c, "rate limited") ? chip("rate-limited", "warn", "the agent hit its rate limit and waits for the reset") : null,
      c.model ? chip(c.model, "dim", "model") : null,
      c.deployed_sha ? chip("@" + c.deployed_sha.slice(0, 8), "dim", "deployed config " + c.deployed_sha) : null,
      c.pending_reminders ? chip("⏰ " + c.pending_reminders, "info", "pending reminders") : null,
      c.disk_bytes !== null && c.disk_bytes !== undefined
        ? chip("disk " + bytes(c.disk_bytes) + (c.disk_quota ? " / " + bytes(c.disk_quota) : ""),
          c.disk_quota && c.disk_bytes > c.disk_quota ? "bad" : "dim") : null,
      c.network ? null : chip("no network", "dim"),
      c.pending_messages || c.inflight_messages
        ? chip("✉ " + (c.pending_messages || 0) + " waiting · " + (c.inflight_messages || 0) + " in flight", "info", "mail") : null,
      c.last_turn ? lastTurnChip(c.last_turn) : null,
    );
    // Why it is where it is (the daemon's sentence, after the word when no chip says it), and
    // what the agent said it is doing: both shown as text, never markup.
    const reason = live(c) ? c.reason : c.semantic + (c.reason ? ": " + c.reason : "");
    const why = c.semantic && reason ? el("div", { class: "why", "data-semantic": c.semantic }, reason) : null;
    const said = c.status_text ? el("div", { class: "said" }, "“" + c.status_text + "”") : null;
    const buttons = el("div", { class: "actions" });
    for (const verb of ["start", "stop", "restart", "kill", "rebuild", c.paused ? "resume" : "pause"]) {
      const button = el("button", { type: "button", "data-action": verb }, verb);
      button.addEventListener("click", () => action(button, "/" + verb + "/" + encodeURIComponent(c.name)));
      buttons.appendChild(button);
    }
    const destroy = el("button", { type: "button", class: "danger", "data-action": "destroy" }, "destroy");
    destroy.addEventListener("click", () => {
      if (confirm("Destroy " + c.name + "? Its state is kept as a tombstone.")) action(destroy, "/destroy/" + encodeURIComponent(c.name));
    });
    const logs = el("button", { type: "button", "data-action": "logs" }, "logs");
    logs.addEventListener("click", () => openLogs(c.name));
    buttons.append(destroy, logs);
    const detail = crashed || (c.detail && c.state !== "running")
      ? el("div", { class: "detail" }, (c.exit_code !== null && c.exit_code !== undefined ? "exit status " + c.exit_code + "\n" : "") + (c.detail || ""))
      : null;
    return el("div", { class: "card container" + (crashed ? " crashed" : ""), "data-name": c.name, "data-state": c.state }, title, why, said, detail, buttons);
  }
  function renderContainers() {
    const box = $("containers");
    box.replaceChildren(...[...state.containers.values()].sort((a, b) => a.name.localeCompare(b.name)).map(containerCard));
    if (!state.containers.size) box.appendChild(el("p", { class: "muted" }, "no agents yet"));
    renderBanner();
  }
  function renderTombstones() {
    $("tombstones-panel").hidden = state.tombstones.size === 0;
    $("tombstones").replaceChildren(...[...state.tombstones.values()].map((t) => {
      const purge = el("button", { type: "button", class: "danger" }, "purge");
      purge.addEventListener("click", () => {
        if (confirm("Delete " + t.name + "'s kept state for good?")) {
          action(purge, "/purge-tombstone/" + encodeURIComponent(t.name)).then(() => { state.tombstones.delete(t.name); renderTombstones(); });
        }
      });
      return el("div", { class: "card tombstone", "data-name": t.name }, el("span", { class: "name" }, t.name), " destroyed " + when(t.destroyed_at) + " ", purge);
    }));
  }
  function renderDead() {
    $("dead-panel").hidden = state.dead.size === 0;
    $("dead-letters").replaceChildren(...[...state.dead.values()].map((d) => {
      const replay = el("button", { type: "button" }, "replay");
      replay.addEventListener("click", () => action(replay, "/dead-letter/" + d.id + "/replay").then(() => { state.dead.delete(d.id); renderDead(); }));
      const drop = el("button", { type: "button", class: "danger" }, "drop");
      drop.addEventListener("click", () => action(drop, "/dead-letter/" + d.id + "/drop").then(() => { state.dead.delete(d.id); renderDead(); }));
      return el("div", { class: "card dead", "data-id": d.id },
        el("div", { class: "title" }, "#" + d.id + " ", el("span", { class: "who" }, d.from), " → ", el("span", { class: "to" }, d.to), chip(d.attempts + " attempts", "warn")),
        el("div", { class: "text" }, d.body.slice(0, 400)), el("div", { class: "actions" }, replay, drop));
    }));
    renderBanner();
  }

  // -- questions -----------------------------------------------------------------------------
  function questionCard(q) {
    const picked = new Set();
    const free = el("textarea", { rows: 2, placeholder: "answer in your own words", class: "free" });
    const options = el("div", { class: "options" });
    for (const option of q.options) {
      if (q.multi) {
        const box = el("input", { type: "checkbox" });
        box.addEventListener("change", () => { if (box.checked) picked.add(option); else picked.delete(option); });
        options.appendChild(el("label", { class: "chip" }, box, " " + option));
      } else {
        const button = el("button", { type: "button", class: "option" }, option);
        button.addEventListener("click", () => action(button, "/answer-question/" + q.id, { answer: option }));
        options.appendChild(button);
      }
    }
    const send = el("button", { type: "button", class: "go answer" }, "answer");
    send.addEventListener("click", () => {
      const parts = [...picked]; if (free.value.trim()) parts.push(free.value.trim());
      if (!parts.length) { toast("pick an option or write an answer"); return; }
      action(send, "/answer-question/" + q.id, { answer: parts.join(", ") });
    });
    const cancel = el("button", { type: "button", class: "danger cancel" }, "cancel");
    cancel.addEventListener("click", () => action(cancel, "/cancel-question/" + q.id));
    return el("div", { class: "card question", "data-id": q.id },
      el("div", { class: "title" }, el("span", { class: "name" }, q.asker), chip("#" + q.id, "dim"), q.multi ? chip("pick any", "dim") : null,
        q.expires_at ? chip("expires " + when(q.expires_at), "dim") : null),
      el("div", { class: "text" }, q.question), q.options.length ? options : null, free,
      el("div", { class: "actions" }, send, cancel));
  }
  function renderQuestions() {
    const open = [...state.questions.values()].filter((q) => q.target === "operator" && q.answered_at === null);
    $("questions-count").textContent = open.length ? String(open.length) : "";
    const box = $("questions");
    box.replaceChildren(...open.map(questionCard));
    if (!open.length) box.appendChild(el("p", { class: "muted" }, "no open questions"));
    renderBanner();
  }

  // -- approvals -----------------------------------------------------------------------------
  function approvalCard(a) {
    const caps = el("div", { class: "caps" }, ...(a.capabilities.length ? a.capabilities : ["(no capability changes)"]).map((line) =>
      el("div", { class: line.startsWith("+") ? "add" : line.startsWith("-") ? "del" : "" }, line)));
    const approve = el("button", { type: "button", class: "go approve" }, "approve");
    const settle = (answer) => { if (answer && answer.approval) { state.approvals.set(answer.approval.id, answer.approval); renderApprovals(); } };
    approve.addEventListener("click", () => action(approve, "/approve/" + a.id).then(settle));
    const deny = el("button", { type: "button", class: "danger deny" }, "deny");
    const reasonBox = el("div", { class: "deny-reason", hidden: true });
    const reason = el("textarea", { rows: 2, placeholder: "why? (the manager is told)", class: "reason" });
    const confirmDeny = el("button", { type: "button", class: "danger confirm-deny" }, "deny with this reason");
    confirmDeny.addEventListener("click", () => {
      if (!reason.value.trim()) { toast("a denial needs a reason"); reason.focus(); return; }
      action(confirmDeny, "/deny/" + a.id, { reason: reason.value }).then(settle);
    });
    reasonBox.append(reason, confirmDeny);
    deny.addEventListener("click", () => { reasonBox.hidden = false; reason.focus(); });
    return el("div", { class: "card approval", "data-id": a.id },
      el("div", { class: "title" }, el("span", { class: "name" }, a.agent), chip(a.kind, "info"), chip("#" + a.id, "dim"), chip(a.commit_ref.slice(0, 12), "dim", a.commit_ref)),
      el("div", { class: "text" }, a.description),
      el("div", { class: "sides" }, R.diff(a.diff), caps),
      el("div", { class: "actions" }, approve, deny), reasonBox);
  }
  // An event carries the row only; the card needs the diffs, which the desk reads from git.
  function loadApproval(id) {
    fetch("/api/approvals/" + id, { credentials: "same-origin" }).then((r) => r.json()).then((answer) => {
      if (answer.ok && answer.approval) { state.approvals.set(id, answer.approval); renderApprovals(); }
    }).catch(() => {});
  }
  function settleApproval(row) {
    const known = state.approvals.get(row.id);
    if (known) { state.approvals.set(row.id, Object.assign({}, known, { status: row.status, note: row.note })); renderApprovals(); }
  }
  function renderApprovals() {
    const open = [...state.approvals.values()].filter((a) => a.status === "pending");
    $("approvals-count").textContent = open.length ? String(open.length) : "";
    const box = $("approvals");
    box.replaceChildren(...open.map(approvalCard));
    if (!open.length) box.appendChild(el("p", { class: "muted" }, "nothing waits for approval"));
    renderBanner();
  }

  // -- inbox and flow ------------------------------------------------------------------------
  function renderInbox() {
    const rows = [...state.inbox.values()].sort((a, b) => b.id - a.id).slice(0, 50);
    $("inbox").replaceChildren(...rows.map((m) => el("div", { class: "inbox-row", "data-id": m.id },
      el("span", { class: "when" }, when(m.sent_at) + " "), el("span", { class: "who" }, m.from), R.markdown(m.body))));
    if (!rows.length) $("inbox").appendChild(el("p", { class: "muted" }, "nothing from the agents yet"));
  }
  // A message from the hive itself carries a helper event as JSON: shown as one line of text.
  function hiveEvent(body) {
    let event = null;
    try { event = JSON.parse(body); } catch (err) { return null; }
    if (!event || typeof event !== "object" || typeof event.event !== "string") return null;
    const fields = Object.entries(event).filter(([key, value]) => key !== "event" && key !== "detail" && value !== null)
      .map(([key, value]) => key + ": " + (typeof value === "string" ? value : JSON.stringify(value)));
    return el("div", { class: "md hive-event" }, "hive event: " + event.event.replace(/_/g, " ") + (fields.length ? " · " + fields.join(" · ") : ""));
  }
  // File paths in a body (the last segment like name.ext, under /state or with a directory)
  // become links to a text preview of that file in the agent's state directory.
  const FILE_REF = /(?:^|[\s(`'"])((?:\/state\/)?(?:[\w.-]+\/)+[\w-][\w.-]*\.[A-Za-z0-9]{1,8}|\/state\/[\w-][\w.-]*\.[A-Za-z0-9]{1,8})(?=$|[\s).,;:`'"])/g;
  function fileRefs(m) {
    const owner = ["operator", "hive", "manager"].includes(m.from) ? m.to : m.from;
    if (["operator", "hive"].includes(owner)) return null;
    const refs = [...new Set([...String(m.body).matchAll(FILE_REF)].map((hit) => hit[1]))].slice(0, 8);
    if (!refs.length) return null;
    return el("div", { class: "file-refs" }, ...refs.map((path) => {
      const link = el("button", { type: "button", class: "file-ref", title: "preview " + owner + ":" + path }, "↗ " + path);
      link.addEventListener("click", () => openFile(owner, path));
      return link;
    }));
  }
  function messageRow(m, delivered) {
    return el("div", { class: "row msg" + (m.from === "hive" ? " hive" : ""), "data-id": m.id },
      el("span", { class: "glyph" }, "›"), el("span", { class: "when" }, when(m.sent_at)),
      el("span", { class: "who" }, m.from), " → ", el("span", { class: "to" }, m.to),
      delivered ? el("span", { class: "delivered", title: "delivered" }, "✓") : null,
      m.body_bytes ? el("span", { class: "chip dim", title: "the stream carries a preview; the inbox and a reload show all of it" }, "preview of " + bytes(m.body_bytes)) : null,
      (m.from === "hive" && hiveEvent(m.body)) || R.markdown(m.body), fileRefs(m));
  }
  function addMessage(m) {
    const key = "m:" + m.id;
    const old = flow.get(key);
    flow.put(key, messageRow(m, old ? old.querySelector(".delivered") !== null : false), m.id);
    if (m.to === "operator") { state.inbox.set(m.id, m); renderInbox(); }
  }
  function sysRow(key, order, glyph, text, kind) {
    flow.put(key, el("div", { class: "row sys " + (kind || "") }, el("span", { class: "glyph" }, glyph), text), order);
  }
  let lastMessageId = 0;

  // -- events ----------------------------------------------------------------------------------
  function apply(ev, fromHistory) {
    const key = "e:" + state.boot + "." + ev.seq;
    const order = lastMessageId + 0.5;
    switch (ev.kind) {
      case "sent": lastMessageId = Math.max(lastMessageId, ev.message.id);
        addMessage(ev.body_bytes ? Object.assign({}, ev.message, { body_bytes: ev.body_bytes }) : ev.message); break;
      case "delivered": {
        const row = flow.get("m:" + ev.id);
        if (row && !row.querySelector(".delivered")) row.querySelector(".to").after(el("span", { class: "delivered", title: "delivered" }, "✓"));
        break;
      }
      case "dead_lettered": sysRow(key, order, "✗", "message #" + ev.id + " to " + ev.recipient + " dead-lettered after " + ev.attempts + " attempts", "warn");
        if (!fromHistory) resync(); break;
      case "question_added": state.questions.set(ev.question.id, ev.question); renderQuestions();
        if (ev.question.target === "operator") {
          sysRow(key, order, "?", ev.question.asker + " asks: " + ev.question.question);
          if (!fromHistory) notifyUser("question from " + ev.question.asker, ev.question.question);
        }
        break;
      case "question_resolved": state.questions.set(ev.question.id, ev.question); renderQuestions();
        if (ev.question.target === "operator") sysRow(key, order, "!", "question #" + ev.question.id + " answered by " + ev.question.answerer + ": " + ev.question.answer);
        break;
      case "container_state_changed": state.containers.set(ev.container.name, ev.container); renderContainers();
        if (!state.agents.includes(ev.container.name)) state.agents.push(ev.container.name);
        break;
      case "container_removed": state.containers.delete(ev.name); renderContainers(); break;
      case "container_crashed": sysRow(key, order, "✗", ev.name + " crashed (exit status " + ev.exit_code + ")", "bad");
        if (!fromHistory) notifyUser(ev.name + " crashed", "exit status " + ev.exit_code);
        break;
      case "agent_registered": if (!state.agents.includes(ev.name)) state.agents.push(ev.name);
        sysRow(key, order, "+", ev.name + " joined the hive"); break;
      case "agent_unregistered": state.agents = state.agents.filter((n) => n !== ev.name);
        sysRow(key, order, "-", ev.name + " left the hive"); if (!fromHistory) resync(); break;
      case "disk_quota_exceeded": sysRow(key, order, "!", ev.name + " uses " + bytes(ev.disk_bytes) + " of disk, past its quota of " + bytes(ev.disk_quota), "warn"); break;
      case "reminder_failed": sysRow(key, order, "⏰", "a reminder for " + ev.reminder.owner + " failed: " + (ev.reminder.failure || ""), "warn"); break;
      case "approval_added": if (!fromHistory) loadApproval(ev.approval.id);
        sysRow(key, order, "§", ev.approval.agent + ": approval #" + ev.approval.id + " requested");
        if (!fromHistory) notifyUser("approval for " + ev.approval.agent, ev.approval.description);
        break;
      case "approval_resolved": settleApproval(ev.approval);
        sysRow(key, order, "§", "approval #" + ev.approval.id + " " + ev.approval.status + (ev.approval.note ? ": " + ev.approval.note : ""),
          ev.approval.status === "failed" ? "bad" : ""); break;
      case "config_ref_changed": if (!fromHistory && ev.ref.startsWith("refs/tags/deployed/"))
          sysRow(key, order, "§", ev.agent + " runs config " + ev.commit.slice(0, 12) + " (" + ev.ref.slice(10) + ")");
        break;
      case "credential_stored": sysRow(key, order, "⚿", (ev.hive ? "the hive's credential" : "a credential") + " stored; logged in: " + (ev.agents.join(", ") || "no agent yet")); break;
      case "credential_removed": sysRow(key, order, "⚿", (ev.hive ? "the hive's credential forgotten; " : "") + "logged out: " + (ev.agents.join(", ") || "no agent")); break;
      case "gap": if (!fromHistory) { sysRow(key, order, "…", "missed events " + ev.first_seq + "–" + ev.last_seq + "; reloading", "warn"); resync(); } break;
      default: break;
    }
    state.seq = Math.max(state.seq, ev.seq);
  }

  function paint(snapshot) {
    state.boot = snapshot.boot; state.seq = snapshot.seq; state.agents = [...snapshot.agents];
    state.containers = new Map(snapshot.containers.map((c) => [c.name, c]));
    state.tombstones = new Map(snapshot.tombstones.map((t) => [t.name, t]));
    state.questions = new Map(snapshot.questions.map((q) => [q.id, q]));
    state.dead = new Map(snapshot.dead_letters.map((d) => [d.id, d]));
    state.approvals = new Map(snapshot.approvals.map((a) => [a.id, a]));
    for (const m of snapshot.inbox) state.inbox.set(m.id, m);
    renderContainers(); renderTombstones(); renderDead(); renderQuestions(); renderApprovals(); renderInbox();
  }

  let syncing = null;
  function resync() {
    if (syncing) return syncing;
    state.ready = false;
    syncing = (async () => {
      try {
        const [st, hist] = await Promise.all([
          fetch("/api/state", { credentials: "same-origin" }).then((r) => r.json()),
          fetch("/dashboard/history?limit=500", { credentials: "same-origin" }).then((r) => r.json()),
        ]);
        if (!st.ok || !hist.ok) throw new Error(st.error || hist.error);
        paint(st.state);
        // History events in order (their rows land between the messages they came with),
        // then the stored messages: whole bodies, and those older than the hub remembers.
        for (const ev of hist.events) apply(ev, true);
        for (const m of hist.messages) { addMessage(m); lastMessageId = Math.max(lastMessageId, m.id); }
        const floor = Math.max(st.state.seq, hist.seq);
        const buffered = state.buffer; state.buffer = [];
        state.ready = true;
        for (const [boot, ev] of buffered) if (boot === state.boot && ev.seq > floor) apply(ev, false);
        state.seq = Math.max(state.seq, floor);
      } catch (err) {
        toast("could not load the hive's state: " + err.message);
        setTimeout(() => { syncing = null; resync(); }, 2000);
        return;
      }
      syncing = null;
    })();
    return syncing;
  }

  function setConn(kind, text) { const c = $("conn"); c.className = "chip " + kind; c.textContent = text; c.dataset.state = kind === "ok" ? "live" : "down"; }
  function connect() {
    if (stream) stream.close();
    stream = new EventSource("/dashboard/stream");
    stream.onopen = () => setConn("ok", "live");
    stream.onerror = () => {
      setConn("warn", "reconnecting…");
      if (stream.readyState === EventSource.CLOSED) setTimeout(connect, 2000);
    };
    stream.onmessage = (message) => {
      const ev = JSON.parse(message.data);
      const boot = message.lastEventId.split(".")[0];
      if (ev.kind === "hello") {
        setConn("ok", "live");
        if (!state.ready && !syncing) { state.boot = ev.boot; resync(); }
        else if (ev.boot !== state.boot || !ev.resumed) { state.boot = ev.boot; resync(); }
        return;
      }
      if (!state.ready) { state.buffer.push([boot, ev]); return; }
      if (boot !== state.boot || ev.seq <= state.seq && ev.kind !== "gap") return;
      apply(ev, false);
    };
  }

  // -- banner and notifications -------------------------------------------------------------
  function renderBanner() {
    const needs = [];
    const questions = [...state.questions.values()].filter((q) => q.target === "operator" && q.answered_at === null).length;
    const approvals = [...state.approvals.values()].filter((a) => a.status === "pending").length;
    const crashed = [...state.containers.values()].filter((c) => c.state === "crashed").map((c) => c.name);
    const login = [...state.containers.values()].filter((c) => c.needs_login).map((c) => c.name);
    if (questions) needs.push(questions + " question" + (questions > 1 ? "s" : ""));
    if (approvals) needs.push(approvals + " approval" + (approvals > 1 ? "s" : ""));
    for (const name of crashed) needs.push(name + " crashed");
    for (const name of login) needs.push(name + " needs a login");
    if (state.dead.size) needs.push(state.dead.size + " dead letter" + (state.dead.size > 1 ? "s" : ""));
    const banner = $("banner");
    banner.hidden = needs.length === 0;
    banner.textContent = needs.length ? "needs you: " + needs.join(" · ") : "";
  }
  function notifyUser(title, body) {
    if (!notify || !("Notification" in window) || Notification.permission !== "granted") return;
    try { new Notification("hyperhive: " + title, { body: String(body).slice(0, 200) }); } catch (err) { /* not allowed here */ }
  }
  function showNotify() { $("notify").textContent = notify ? "notifications on" : "notifications off"; }
  $("notify").addEventListener("click", async () => {
    if (!notify && "Notification" in window && Notification.permission !== "granted") await Notification.requestPermission();
    notify = !notify && "Notification" in window && Notification.permission === "granted";
    localStorage.setItem("hh.notify", notify ? "on" : "off"); showNotify();
  });
  showNotify();

  // -- compose ---------------------------------------------------------------------------------
  const body = $("compose-body");
  const suggest = $("compose-suggest");
  let recipient = localStorage.getItem("hh.to") || "";
  let choices = []; let chosen = 0;
  function showRecipient() { $("compose-to").textContent = "→ " + (recipient || "?"); }
  function candidates(prefix) {
    const names = [...new Set(["manager", ...state.agents, ...state.containers.keys()])].sort();
    return names.filter((n) => n.startsWith(prefix));
  }
  function refreshSuggest() {
    const match = /^@([a-z0-9-]*)$/.exec(body.value);
    choices = match ? candidates(match[1]) : [];
    chosen = Math.min(chosen, Math.max(0, choices.length - 1));
    suggest.hidden = choices.length === 0;
    suggest.replaceChildren(...choices.map((name, i) => {
      const item = el("div", { class: i === chosen ? "active" : "" }, "@" + name);
      item.addEventListener("mousedown", (event) => { event.preventDefault(); pick(name); });
      return item;
    }));
  }
  function pick(name) { body.value = "@" + name + " "; recipient = name; showRecipient(); suggest.hidden = true; choices = []; body.focus(); }
  body.addEventListener("input", refreshSuggest);
  body.addEventListener("keydown", (event) => {
    if (choices.length && (event.key === "Tab" || (event.key === "Enter" && !event.shiftKey))) { event.preventDefault(); pick(choices[chosen]); return; }
    if (choices.length && (event.key === "ArrowDown" || event.key === "ArrowUp")) {
      event.preventDefault(); chosen = (chosen + (event.key === "ArrowDown" ? 1 : choices.length - 1)) % choices.length; refreshSuggest(); return;
    }
    if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); $("compose").requestSubmit(); }
  });
  $("compose").addEventListener("submit", async (event) => {
    event.preventDefault();
    let text = body.value;
    const at = /^@([a-z0-9-]+)\s*/.exec(text);
    if (at) { recipient = at[1]; text = text.slice(at[0].length); }
    const error = $("compose-error");
    if (!recipient) { error.hidden = false; error.textContent = "start with @name to pick the recipient"; return; }
    if (!text.trim()) return;
    localStorage.setItem("hh.to", recipient); showRecipient();
    const send = $("compose-send"); send.disabled = true;
    try { await post("/op-send", { to: recipient, body: text }); body.value = ""; error.hidden = true; }
    catch (err) { error.hidden = false; error.textContent = err.message; }
    finally { send.disabled = false; }
  });
  showRecipient();

  // -- logs ------------------------------------------------------------------------------------
  let logStream = null;
  function openLogs(name) {
    const dialog = $("logs-dialog"); const pre = $("logs-text");
    $("logs-title").textContent = "logs: " + name; pre.textContent = "";
    if (logStream) logStream.close();
    logStream = new EventSource("/logs/" + encodeURIComponent(name) + "/stream");
    logStream.onmessage = (message) => {
      const data = JSON.parse(message.data);
      if (data.error) { pre.appendChild(R.text("[" + data.error + "]\n")); logStream.close(); return; }
      if (data.reset) pre.textContent = "";
      const stick = pre.scrollHeight - pre.scrollTop - pre.clientHeight < 24;
      pre.appendChild(R.text(data.lines.map((l) => l + "\n").join("")));
      if (stick) pre.scrollTop = pre.scrollHeight;
    };
    dialog.showModal();
  }
  async function openFile(agent, path) {
    if (logStream) { logStream.close(); logStream = null; }
    const pre = $("logs-text");
    $("logs-title").textContent = agent + ": " + path;
    pre.textContent = "loading…";
    $("logs-dialog").showModal();
    const answer = await fetch("/api/file?agent=" + encodeURIComponent(agent) + "&path=" + encodeURIComponent(path), { credentials: "same-origin" })
      .then((r) => r.json()).catch((err) => ({ ok: false, error: err.message }));
    pre.textContent = answer.ok ? answer.text : "[" + answer.error + "]";
  }
  $("logs-close").addEventListener("click", () => { if (logStream) logStream.close(); logStream = null; $("logs-dialog").close(); });

  connect();
})();

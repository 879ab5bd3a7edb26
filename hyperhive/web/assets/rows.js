// The per-agent terminal's rows: window.HiveRows.render(event, ctx) -> [{key, order, node}].
// One live event (docs/terminal-rendering.md has the taxonomy) becomes zero or more rows.
// Everything an agent wrote reaches the DOM as text nodes, or as markdown through HiveRender
// (markdown-it without raw HTML, then DOMPurify). ctx carries what spans events: the
// tool_use id -> tool name map (so a result knows it came from recv or Bash).
(function () {
  "use strict";
  const R = window.HiveRender;
  const MESSAGE_TOOLS = { send: "body", ask: "question", answer: "answer", recv: null };

  function el(tag, cls, ...children) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      node.appendChild(typeof child === "string" || typeof child === "number" ? R.text(child) : child);
    }
    return node;
  }
  function row(kind, glyph, ...children) {
    return el("div", "row " + kind, el("span", "glyph", glyph), ...children);
  }
  function details(kind, glyph, summary, body, open) {
    const box = el("details", "row " + kind);
    if (open) box.open = true;
    box.appendChild(el("summary", null, el("span", "glyph", glyph), summary));
    box.appendChild(el("div", "body", body));
    return box;
  }
  function str(value) {
    if (value === null || value === undefined) return "";
    return typeof value === "string" ? value : JSON.stringify(value, null, 2);
  }
  function clip(text, n) { text = str(text); return text.length > n ? text.slice(0, n - 1) + "…" : text; }
  function pre(text, cls) { return el("pre", cls || "out", str(text)); }
  function shortTool(name) {
    const m = /^mcp__([^_]+(?:_[^_]+)*)__(.+)$/.exec(name || "");
    return m ? { server: m[1], tool: m[2] } : { server: null, tool: name || "?" };
  }
  // Readable arguments for any tool without its own rendering (extra MCP servers included).
  function argsGeneric(input) {
    const box = el("div", "args");
    if (!input || typeof input !== "object") { box.appendChild(pre(input)); return box; }
    for (const [key, value] of Object.entries(input)) {
      const text = str(value);
      box.appendChild(el("div", "arg", el("span", "key", key + ": "),
        text.includes("\n") ? pre(text, "val") : el("span", "val", text)));
    }
    return box;
  }
  function inlineDiff(oldText, newText) {
    const box = el("div", "idiff");
    for (const line of str(oldText).split("\n")) box.appendChild(el("div", "del", "- " + line));
    for (const line of str(newText).split("\n")) box.appendChild(el("div", "ins", "+ " + line));
    return box;
  }
  function resultText(content) {
    if (typeof content === "string") return content;
    if (Array.isArray(content)) {
      return content.map((b) => (b && b.type === "text" ? str(b.text) : b && b.type ? "[" + b.type + "]" : str(b))).join("\n");
    }
    return str(content);
  }

  // -- tool calls --------------------------------------------------------------------------
  function toolCall(block, sub) {
    const name = str(block.name);
    const input = block.input && typeof block.input === "object" ? block.input : {};
    const { server, tool } = shortTool(name);
    const mark = sub ? " sub" : "";
    if (server === "hive" && tool in MESSAGE_TOOLS) {
      const field = MESSAGE_TOOLS[tool];
      const head = tool === "send" ? "→ send to " + str(input.to)
        : tool === "ask" ? "? ask " + (input.to ? str(input.to) : "the operator")
        : tool === "answer" ? "↩ answer #" + str(input.id)
        : "⇣ recv (wait " + str(input.wait_seconds === undefined ? "default" : input.wait_seconds) + "s)";
      const body = el("div", null,
        field ? R.markdown(str(input[field])) : null,
        tool === "ask" && Array.isArray(input.options) ? el("div", "opts", "options: " + input.options.map(str).join(" | ")) : null);
      return details("tool msg" + mark, "⚙", el("span", "tname", head), body, true);
    }
    if (name === "Write") {
      return details("tool write" + mark, "✎", el("span", "tname", "Write " + str(input.file_path)),
        writeDiff(input.content), true);
    }
    if (name === "Edit") {
      return details("tool edit" + mark, "✎", el("span", "tname", "Edit " + str(input.file_path)),
        inlineDiff(input.old_string, input.new_string), true);
    }
    if (name === "MultiEdit") {
      const body = el("div", null);
      for (const edit of Array.isArray(input.edits) ? input.edits : []) body.appendChild(inlineDiff(edit && edit.old_string, edit && edit.new_string));
      return details("tool edit" + mark, "✎", el("span", "tname", "MultiEdit " + str(input.file_path)), body, true);
    }
    if (name === "Bash") {
      return row("tool bash" + mark, "$", el("span", "cmd", str(input.command)),
        input.description ? el("span", "muted", "  # " + str(input.description)) : null);
    }
    if (name === "Task" || name === "Agent") {
      return details("tool task" + mark, "⊞", el("span", "tname", "Task sub-agent: " + clip(input.description || input.subagent_type || "", 200)),
        R.markdown(str(input.prompt)), false);
    }
    if (name === "Read" || name === "Glob" || name === "Grep" || name === "LS") {
      const what = input.file_path || input.pattern || input.path || "";
      return row("tool read" + mark, "⚙", el("span", "tname", name + " "), el("span", "arg1", str(what)));
    }
    return details("tool generic" + mark, "⚙", el("span", "tname", server ? server + " · " + tool : name), argsGeneric(input), false);
  }
  function writeDiff(content) {
    const box = el("div", "idiff");
    for (const line of str(content).split("\n")) box.appendChild(el("div", "ins", "+ " + line));
    return box;
  }

  function toolResult(block, ctx, sub) {
    const name = ctx.tools.get(str(block.tool_use_id)) || "?";
    const { server, tool } = shortTool(name);
    const text = resultText(block.content);
    const bad = block.is_error ? " bad" : "";
    const mark = sub ? " sub" : "";
    if (server === "hive" && tool === "recv") {
      return details("result recv" + bad + mark, "⇠", el("span", "tname", "recv result"), R.markdown(text), true);
    }
    if (name === "Bash") {
      return details("result bash" + bad + mark, "⇠", el("span", "tname", clip(text.split("\n")[0] || "(no output)", 160)), pre(text), text.split("\n").length <= 12);
    }
    return details("result" + bad + mark, "⇠", el("span", "tname", tool + " → " + clip(text.split("\n")[0] || "(empty)", 160)), pre(text), false);
  }

  // -- claude's stream-json ----------------------------------------------------------------
  function streamRows(data, ctx) {
    const type = data && data.type;
    const sub = Boolean(data && data.parent_tool_use_id);
    const content = data && data.message && Array.isArray(data.message.content) ? data.message.content : null;
    if (type === "assistant" && content) {
      const out = [];
      for (const block of content) {
        if (!block || typeof block !== "object") continue;
        if (block.type === "text") out.push(el("div", "row text" + (sub ? " sub" : ""), el("span", "glyph", sub ? "⊞" : "●"), R.markdown(str(block.text))));
        else if (block.type === "thinking" || block.type === "redacted_thinking") out.push(details("thinking", "∴", el("span", "tname", "thinking"), pre(block.thinking || "(redacted)"), false));
        else if (block.type === "tool_use") { ctx.tools.set(str(block.id), str(block.name)); out.push(toolCall(block, sub)); }
        else out.push(unknownRow("assistant block " + str(block.type), block));
      }
      return out;
    }
    if (type === "user" && content) {
      const out = [];
      for (const block of content) {
        if (block && block.type === "tool_result") out.push(toolResult(block, ctx, sub));
        else if (block && block.type === "text") out.push(row("prompt" + (sub ? " sub" : ""), "›", el("span", "muted", clip(block.text, 2000))));
      }
      return out;
    }
    if (type === "user" && data.message && typeof data.message.content === "string") {
      return [row("prompt", "›", el("span", "muted", clip(data.message.content, 2000)))];
    }
    if (type === "system") {
      const subtype = str(data.subtype);
      if (subtype === "init") return [row("sys init", "◇", "session " + clip(data.session_id, 40) + " · model " + str(data.model) + " · " + (Array.isArray(data.tools) ? data.tools.length : 0) + " tools")];
      if (subtype === "api_retry") return [row("warn", "↻", "API retry " + str(data.attempt) + " of " + str(data.max_retries) + ": " + str(data.error) + (data.error_status ? " (" + str(data.error_status) + ")" : ""))];
      if (subtype === "compact_boundary") return [row("sys", "⇲", "context compacted")];
      if (subtype === "status") return [row("sys", "◇", "status: " + str(data.status))];
      return [unknownRow("system " + subtype, data)];
    }
    if (type === "result") {
      const secs = typeof data.duration_ms === "number" ? (data.duration_ms / 1000).toFixed(1) + " s" : "";
      return [row("sys result" + (data.is_error ? " bad" : ""), "◆", "result " + str(data.subtype) + (data.is_error ? " (error)" : "") + (secs ? " · " + secs : ""))];
    }
    if (type === "command_lifecycle") return [row("sys lifecycle", "·", "input " + str(data.state))];
    if (type === "control_response") {
      const reply = data.response && typeof data.response === "object" ? data.response : {};
      return [row("sys lifecycle", "·", "control " + str(reply.subtype) + (reply.error ? ": " + clip(reply.error, 300) : ""))];
    }
    if (type === "rate_limit_event") {
      const info = data.rate_limit_info || {};
      return [row("warn", "⏳", "rate limit " + str(info.status) + (info.resetsAt ? " · resets " + new Date(info.resetsAt * 1000).toLocaleTimeString() : ""))];
    }
    return [unknownRow("stream " + str(type), data)];
  }
  function unknownRow(what, data) {
    return details("unknown", "?", el("span", "tname", "unknown " + clip(what, 120)), pre(JSON.stringify(data, null, 2)), false);
  }

  // -- harness events ----------------------------------------------------------------------
  const when = (at) => new Date(at * 1000).toLocaleTimeString();
  function harnessRows(event, ctx) {
    const d = event.data || {};
    switch (event.kind) {
      case "stream": return streamRows(d, ctx);
      case "stderr": return [row("stderr", "!", str(d.line))];
      case "output": return [row("output", "│", str(d.line))];
      case "note": return [row("note", "✦", str(d.text))];
      case "turn_started":
        ctx.turn += 1;
        return [row("turn", "┌", "turn · " + when(event.at) + " · woken by " + str(d.wake_from) + " · " + str(d.messages) + " message(s)" + (d.model ? " · " + str(d.model) : "") + (d.fresh_session ? " · new session" : "") + (d.compact_first ? " · compact first" : ""))];
      case "turn_ended": {
        const cost = typeof d.cost_usd === "number" ? " · $" + d.cost_usd.toFixed(4) : "";
        const ctxTokens = typeof d.ctx === "number" ? " · ctx " + d.ctx : "";
        return [row("turn end" + (d.outcome === "ok" ? "" : " bad"), "└", "turn " + str(d.outcome) + (d.detail ? ": " + clip(d.detail, 300) : "") + " · " + (Number(d.duration_ms) / 1000).toFixed(1) + " s" + ctxTokens + cost)];
      }
      case "acked": return [row("sys", "✓", "acked " + str(d.count) + " message(s)")];
      case "model": return [row("sys", "◇", "model from the next turn: " + (d.model ? str(d.model) : "the default"))];
      case "claude": return [row("sys", "◇", "claude " + str(d.action) + " (pid " + str(d.pid) + ")" + (d.reason ? ": " + str(d.reason) : "") + (d.model ? " · " + str(d.model) : ""))];
      case "started": return [row("sys", "◇", "harness started" + (d.requeued ? "; " + str(d.requeued) + " message(s) back from before" : ""))];
      case "rate_limited": return [row("warn", "⏳", "rate limited; retrying in " + Math.round(Number(d.retry_in)) + " s" + (d.detail ? ": " + clip(d.detail, 300) : ""))];
      case "rate_limit_cleared": return [row("sys", "✓", "rate limit cleared")];
      case "backing_off": return [row("warn", "↻", "turn " + str(d.outcome) + "; retrying in " + Math.round(Number(d.retry_in)) + " s" + (d.detail ? ": " + clip(d.detail, 300) : ""))];
      case "needs_login": return [row("warn", "🔑", "needs login" + (d.detail ? ": " + str(d.detail) : ""))];
      case "logged_in": return [row("sys", "🔑", "logged in (" + str(d.method) + ")")];
      case "state": case "usage": return [];  // they drive the badges
      case "invalid": return [row("unknown", "?", "the harness sent a " + str(d.kind) + " event of the wrong shape: " + str(d.error))];
      default: return [unknownRow("event " + str(event.kind), d)];
    }
  }

  function render(event, ctx) {
    let nodes;
    try { nodes = harnessRows(event, ctx); } catch (err) { nodes = [unknownRow("event (" + err.message + ")", event.data)]; }
    return nodes.map((node, index) => {
      node.dataset.seq = String(event.seq);
      node.dataset.kind = event.kind;
      return { key: event.seq + "." + index, order: event.seq * 1000 + index, node: node };
    });
  }
  window.HiveRows = { render: render, context: () => ({ tools: new Map(), turn: 0 }) };
})();

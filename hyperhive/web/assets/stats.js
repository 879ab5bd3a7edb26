// The agent's stats page: stats.json for the numbers (text only), server-rendered SVG charts
// shown as images (no chart library, no script in them).
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const name = decodeURIComponent(location.pathname.split("/")[2] || "");
  const base = "/agent/" + encodeURIComponent(name) + "/";
  const METRICS = ["turns", "duration", "tokens", "cache", "cost", "tools"];
  document.title = name + " · stats · hyperhive";
  $("agent-name").textContent = name;
  $("agent-link").href = base;
  const bucket = () => $("bucket").value;

  function cell(tag, text) { const node = document.createElement(tag); node.textContent = String(text); return node; }
  function table(id, head, rows) {
    const box = $(id);
    const header = document.createElement("tr");
    for (const h of head) header.appendChild(cell("th", h));
    box.replaceChildren(header);
    for (const r of rows) {
      const tr = document.createElement("tr");
      for (const value of r) tr.appendChild(cell("td", value));
      box.appendChild(tr);
    }
  }
  const sorted = (map) => Object.entries(map || {}).sort((a, b) => b[1] - a[1]);
  async function load() {
    $("error").hidden = true;
    try {
      const response = await fetch(base + "stats.json?bucket=" + bucket(), { credentials: "same-origin" });
      const answer = await response.json();
      if (!answer.ok) throw new Error(answer.error || "HTTP " + response.status);
      const s = answer.stats;
      const sum = (key) => s.buckets.reduce((n, b) => n + b[key], 0);
      $("totals").textContent = sum("turns") + " turns (" + sum("ok") + " ok) · " + (sum("duration_ms") / 1000).toFixed(1) +
        " s · " + sum("input_tokens") + " in / " + sum("output_tokens") + " out tokens · cache " + sum("cache_read_tokens") +
        " read / " + sum("cache_creation_tokens") + " written · $" + sum("cost_usd").toFixed(4) + " · " + sum("tool_calls") + " tool calls";
      $("totals").dataset.turns = String(sum("turns"));
      table("models", ["model", "turns"], sorted(s.models));
      table("tools", ["tool", "calls"], sorted(s.tools));
      table("results", ["result", "turns"], sorted(s.results));
      table("recent", ["started", "woken by", "result", "s", "in", "out", "$", "tools", "model"], (s.recent || []).map((t) => [
        new Date(t.started_at * 1000).toLocaleString(), t.wake_from, t.result_kind, (t.duration_ms / 1000).toFixed(1),
        t.input_tokens, t.output_tokens, Number(t.cost_usd).toFixed(4), t.tool_call_count, t.model || "default"]));
      const stamp = Date.now();
      $("charts").replaceChildren(...METRICS.map((m) => {
        const img = document.createElement("img");
        img.alt = m + " per " + bucket();
        img.dataset.metric = m;
        img.src = base + "stats/" + m + ".svg?bucket=" + bucket() + "&t=" + stamp;
        return img;
      }));
    } catch (err) {
      $("error").textContent = err.message; $("error").hidden = false;
    }
  }
  $("bucket").addEventListener("change", load);
  $("reload").addEventListener("click", load);
  load();
})();

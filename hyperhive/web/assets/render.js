// Rendering agent-written text safely: window.HiveRender.
// - text(str): a text node, never markup;
// - markdown(str): markdown-it with raw HTML off (a <script> in the source is shown as text),
//   then DOMPurify with a small allowlist, returned as a fragment;
// - diff(str): diff2html's rendering of a unified diff, through DOMPurify.
(function () {
  "use strict";
  const md = window.markdownit({ html: false, linkify: false, typographer: false });
  const TAGS = ["p", "br", "strong", "em", "code", "pre", "blockquote", "ul", "ol", "li", "a",
    "h1", "h2", "h3", "h4", "h5", "h6", "hr", "table", "thead", "tbody", "tr", "th", "td", "del", "s"];
  const PURIFY = { ALLOWED_TAGS: TAGS, ALLOWED_ATTR: ["href", "title"],
    ALLOWED_URI_REGEXP: /^(?:https?:|mailto:)/i, RETURN_DOM_FRAGMENT: true };
  window.DOMPurify.addHook("afterSanitizeAttributes", (node) => {
    if (node.tagName === "A") { node.setAttribute("rel", "noopener noreferrer"); node.setAttribute("target", "_blank"); }
  });
  const DIFF_TAGS = ["div", "span", "table", "thead", "tbody", "tr", "th", "td", "del", "ins", "br"];
  function markdown(source) {
    const frag = window.DOMPurify.sanitize(md.render(String(source)), PURIFY);
    const box = document.createElement("div");
    box.className = "md";
    box.appendChild(frag);
    return box;
  }
  function diff(unified) {
    const box = document.createElement("div");
    box.className = "diff";
    if (!unified) { box.textContent = "(no changes to files)"; return box; }
    const html = window.Diff2Html.html(String(unified), { drawFileList: false, outputFormat: "line-by-line", matching: "none" });
    box.appendChild(window.DOMPurify.sanitize(html, { ALLOWED_TAGS: DIFF_TAGS, ALLOWED_ATTR: ["class"], RETURN_DOM_FRAGMENT: true }));
    return box;
  }
  function text(value) { return document.createTextNode(String(value)); }
  // What an agent is doing (a wire HarnessReport) in a few words, and the chip kind for it.
  const KNOWN = ["starting", "idle", "thinking", "tool", "waiting_recv", "compacting", "retrying",
    "rate_limited", "backing_off", "needs_login", "disconnected", "interrupted"];
  function activity(report) {
    if (!report) return { text: "?", kind: "dim" };
    const until = typeof report.until === "number" && report.until * 1000 > Date.now()
      ? " until " + new Date(report.until * 1000).toLocaleTimeString() : "";
    const detail = report.detail ? ": " + String(report.detail).slice(0, 160) : "";
    switch (report.activity) {
      case "tool": return { text: "running " + String(report.tool || "a tool"), kind: "busy" };
      case "waiting_recv": return { text: "waiting on recv", kind: "info" };
      case "thinking": return { text: "thinking", kind: "busy" };
      case "compacting": return { text: "compacting", kind: "busy" };
      case "retrying": return { text: "retrying" + detail + until, kind: "warn" };
      case "rate_limited": return { text: "rate limited" + until + detail, kind: "warn" };
      case "backing_off": return { text: "backing off" + until + detail, kind: "warn" };
      case "needs_login": return { text: "needs login", kind: "warn" };
      case "disconnected": return { text: "lost the hive", kind: "bad" };
      case "interrupted": return { text: "interrupted", kind: "warn" };
      case "idle": return { text: "idle", kind: "ok" };
      default:
        return KNOWN.includes(report.activity) ? { text: String(report.activity), kind: "dim" }
          : { text: "unknown (" + String(report.activity).slice(0, 40) + ")", kind: "warn" };
    }
  }
  window.HiveRender = { markdown: markdown, diff: diff, text: text, activity: activity };
})();

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
  // What an agent is doing, as the daemon put it (a row's or the page state's `semantic` and
  // `reason`: hyperhive/core/container_view.py): the chip's kind, and its text on the agent's
  // page, where no line says the reason (the word, what it runs while it works, the reason
  // with the word while it waits on the API).
  const KIND = { idle: "ok", working: "busy", compacting: "busy", starting: "busy", retrying: "warn",
    "rate limited": "warn", "backing off": "warn", "needs login": "warn", interrupted: "warn",
    paused: "warn", "lost the hive": "bad", crashed: "bad", "start refused": "bad",
    stopped: "dim" };
  function doing(semantic, reason) {
    const word = String(semantic || "");
    if (!word) return { word: "?", text: "?", kind: "dim" };
    const why = String(reason || "").slice(0, 200);
    const text = word === "working" || word === "rate limited" ? why || word
      : (word === "retrying" || word === "backing off") && why ? word + ": " + why : word;
    return { word: word, text: text, kind: KIND[word] || (word.startsWith("unknown") ? "warn" : "dim") };
  }
  window.HiveRender = { markdown: markdown, diff: diff, text: text, doing: doing };
})();

(function () {
  "use strict";
  document.getElementById("login").addEventListener("submit", async (event) => {
    event.preventDefault();
    const response = await fetch("/login", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ token: document.getElementById("token").value }) });
    if (response.ok) { location.href = "/"; return; }
    const body = await response.json().catch(() => ({ error: "log-in failed" }));
    document.getElementById("error").textContent = body.error;
  });
})();

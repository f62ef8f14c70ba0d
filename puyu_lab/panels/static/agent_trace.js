// AgentTracePanel: the live timeline of an agent run (anywidget ESM, no CDN).
// The widget model is the source of truth: `steps`, `turns`, `status`, `question`, `labels`.
// Every word it writes comes from `labels` (the course language, puyu_lab/panels/agent.py). A step's `text` (what the
// model wrote or read) and a turn's `diagnosis` are kept as recorded; where `labels.lang` is "zh", the Chinese of this
// package's own words in them (`text_zh`, `diagnosis_zh`) is shown, the model's exact text in the step's tooltip.
const ICON = { thought: "∴", call: "⚙", observation: "⇐", final: "✓", error: "⚠" };

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

function section(title, body, cls) {
  const d = el("details", "pt-detail " + (cls || ""));
  d.appendChild(el("summary", null, title));
  d.appendChild(el("pre", null, body));
  return d;
}

function render({ model, el: root }) {
  root.classList.add("puyu-trace");
  const open = new Set();  // turns the learner expanded survive redraws

  function draw() {
    const L = model.get("labels") || {};
    const steps = model.get("steps") || [];
    const turns = model.get("turns") || [];
    const status = model.get("status") || "";
    const zh = L.lang === "zh";
    root.replaceChildren();
    const head = el("div", "pt-head");
    head.appendChild(el("span", "pt-title", L.title || "Agent trace"));
    const badge = el("span", "pt-status pt-" + status, L["status_" + status] || status);
    badge.dataset.status = status;
    head.appendChild(badge);
    const info = el("span", "pt-info", model.get("backend") || "");
    head.appendChild(info);
    if (status === "running") {
      const b = el("button", "pt-stop", L.stop || "Stop");
      b.onclick = () => { model.set("stop_requested", true); model.save_changes(); };
      head.appendChild(b);
    }
    root.appendChild(head);
    if (model.get("error_text")) {
      root.appendChild(el("div", "pt-errline", "⚠ " + model.get("error_text")));
    }
    if (model.get("question")) {
      const q = el("div", "pt-question");
      q.appendChild(el("b", null, (L.question || "Question") + ": "));
      q.appendChild(document.createTextNode(model.get("question")));
      root.appendChild(q);
    }
    const list = el("ol", "pt-steps");
    let lastTurn = -1;
    for (const s of steps) {
      if (s.turn !== lastTurn) {
        lastTurn = s.turn;
        const t = turns.find((x) => x.turn === s.turn);
        const li = el("li", "pt-turn");
        const bar = el("div", "pt-turnbar", `${L.turn || "Turn"} ${s.turn + 1}`);
        if (t) {
          bar.appendChild(el("span", "pt-meta",
            ` · ${t.prompt_tokens} → ${t.output_tokens} ${L.tokens || "tokens"} · ${Number(t.seconds).toFixed(2)} s`));
          const box = el("div", "pt-turnbox");
          if (t.diagnosis) {
            const d = el("div", "pt-diagnosis");
            d.appendChild(el("b", null, (L.why_no_tool || "Why was no tool called?") + " "));
            d.appendChild(document.createTextNode((zh && t.diagnosis_zh) || t.diagnosis));
            box.appendChild(d);
          }
          for (const [key, body] of [["prompt_sent", t.prompt], ["raw_output", t.raw],
                                     ["parse_result", JSON.stringify(t.parse, null, 1)]]) {
            const d = section(L[key] || key, body, "pt-" + key);
            d.open = open.has(`${s.turn}:${key}`);
            d.ontoggle = () => { const k = `${s.turn}:${key}`; d.open ? open.add(k) : open.delete(k); };
            box.appendChild(d);
          }
          li.appendChild(bar);
          li.appendChild(box);
        } else {
          li.appendChild(bar);
        }
        list.appendChild(li);
      }
      const row = el("li", "pt-step pt-" + s.kind);
      row.dataset.kind = s.kind;
      row.appendChild(el("span", "pt-icon", ICON[s.kind] || "•"));
      row.appendChild(el("span", "pt-kind", L["step_" + s.kind] || s.kind));
      const text = el("span", "pt-text", (zh && s.text_zh) || s.text);
      if (zh && s.text_zh) text.title = `${L.model_read || "what the model read"}: ${s.text}`;  // the exact text
      row.appendChild(text);
      const meta = [];
      if (s.seconds !== undefined && s.seconds !== null) meta.push(`${Number(s.seconds).toFixed(3)} s`);
      if (s.tokens) meta.push(`${s.tokens} ${L.tok || "tok"}`);
      if (s.notes && s.notes.length) meta.push(s.notes.join("; "));
      if (meta.length) row.appendChild(el("span", "pt-meta", meta.join(" · ")));
      list.appendChild(row);
    }
    root.appendChild(list);
  }
  for (const name of ["steps", "turns", "status", "question", "labels", "backend", "error_text"]) {
    model.on("change:" + name, draw);
  }
  draw();
}

export default { render };

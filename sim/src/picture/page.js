// Hovering a checker's message outlines the operations it names; clicking an operation or a
// mark shows its details. Nothing is fetched: the page is the whole picture.
(function () {
  const details = document.getElementById("details");
  for (const item of document.querySelectorAll(".violation")) {
    const ids = item.dataset.ops.split(" ").filter((id) => id !== "");
    const ops = ids.map((id) => document.querySelector(`.op[data-op="${id}"]`)).filter((op) => op);
    const focus = (on) => {
      item.classList.toggle("focus", on);
      for (const op of ops) op.classList.toggle("focus", on);
    };
    item.addEventListener("mouseenter", () => focus(true));
    item.addEventListener("mouseleave", () => focus(false));
    item.addEventListener("click", () => {
      if (ops.length > 0) ops[0].scrollIntoView({ inline: "center", block: "nearest" });
      details.textContent = item.textContent;
    });
  }
  for (const shape of document.querySelectorAll(".op, .mark, .span, .leader-change")) {
    shape.addEventListener("click", () => {
      const title = shape.querySelector("title");
      const named = shape.dataset.checkers ? `\nnamed by: ${shape.dataset.checkers}` : "";
      details.textContent = (title ? title.textContent : "") + named;
    });
  }
  // For tests and people alike: what the page drew.
  document.body.dataset.lanes = document.querySelectorAll(".lane.member").length;
  document.body.dataset.flagged = document.querySelectorAll(".op.flagged").length;
})();

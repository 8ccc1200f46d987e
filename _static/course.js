// Light or dark: follow the reader's setting until they choose one. The theme reads the mode
// from the <html> element and logs an error when it finds an empty one.
if (!document.documentElement.dataset.mode) document.documentElement.dataset.mode = "auto";

// The header of a solution reads "Solution to Exercise 2.1 (...)" and links to the exercise.
// The header is also the button that shows or hides the solution, so a click on its link
// opens the solution (and keeps the page where it is) instead of leaving it closed.
document.addEventListener(
  "click",
  (event) => {
    const link = event.target.closest(".solution.dropdown > .admonition-title a");
    if (!link) return;
    event.preventDefault();
    event.stopPropagation();
    const solution = link.closest(".solution");
    const button = solution.querySelector(".toggle-button");
    if (button && solution.classList.contains("toggle-hidden")) button.click();
  },
  true,
);

// MathJax cannot break an inline formula across lines. On a narrow screen, an inline formula
// wider than its paragraph gets its own horizontal scroller instead of widening the page.
function markWideInlineMath() {
  for (const math of document.querySelectorAll('mjx-container[jax="CHTML"]')) {
    const display = math.getAttribute("display") === "true";
    if (!display && !math.closest("table")) {
      // (A table scrolls as a whole inside its own container.)
      math.classList.remove("math-scroll");
      const parent = math.parentElement.closest("p, li, dd, div");
      if (parent && math.getBoundingClientRect().width > parent.clientWidth) {
        math.classList.add("math-scroll");
      }
    }
    // A formula that scrolls can be reached and scrolled with the keyboard.
    if (math.scrollWidth > math.clientWidth + 1) math.setAttribute("tabindex", "0");
    else math.removeAttribute("tabindex");
  }
}
window.addEventListener("load", () => {
  const startup = window.MathJax && window.MathJax.startup && window.MathJax.startup.promise;
  if (startup) startup.then(markWideInlineMath);
});
let resizeTimer = null;
window.addEventListener("resize", () => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(markWideInlineMath, 200);
});

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

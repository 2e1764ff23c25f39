// Buttons that undo something a person relies on (a worker's invite link, an API token) ask first:
// a submit button with data-confirm="question" submits only if the question is answered OK.
// Without JavaScript the button submits at once, as before.
document.addEventListener("submit", (event) => {
  const button = event.submitter;
  const question = button && button.dataset ? button.dataset.confirm : undefined;
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});

// The drawers of a phone (below 760 px the sidebar and the member list slide
// in over the conversation, with an overlay behind them) and the member
// column of a desktop, which its button shows and hides. The buttons' aria-
// expanded follows; closing can give focus back to the button that opened.

/**
 * Wire the drawers to the page's elements.
 * @param {{app: HTMLElement, overlay: HTMLElement, sidebar: HTMLElement, members: HTMLElement,
 *          menuButton: HTMLElement, membersButton: HTMLElement}} el
 * @returns {{close: (returnFocus?: boolean) => void, isOpen: () => boolean}}
 */
export function drawers(el) {
  const phone = window.matchMedia("(max-width: 760px)");

  function open(which) {
    el.app.classList.add(`${which}-open`);
    el.overlay.hidden = false;
    const button = which === "nav" ? el.menuButton : el.membersButton;
    button.setAttribute("aria-expanded", "true");
    const panel = which === "nav" ? el.sidebar : el.members;
    panel.querySelector("button, input")?.focus();
  }

  function close(returnFocus = false) {
    const was = el.app.classList.contains("nav-open") ? el.menuButton
      : el.app.classList.contains("members-open") ? el.membersButton : null;
    el.app.classList.remove("nav-open", "members-open");
    el.overlay.hidden = true;
    el.menuButton.setAttribute("aria-expanded", "false");
    if (phone.matches) el.membersButton.setAttribute("aria-expanded", "false");
    if (returnFocus && was) was.focus();
  }

  el.menuButton.addEventListener("click", () => {
    if (el.app.classList.contains("nav-open")) close(true);
    else open("nav");
  });

  el.membersButton.addEventListener("click", () => {
    if (phone.matches) {
      if (el.app.classList.contains("members-open")) close(true);
      else open("members");
    } else {
      const hidden = el.app.classList.toggle("members-hidden");
      el.membersButton.setAttribute("aria-expanded", String(!hidden));
    }
  });

  el.overlay.addEventListener("click", () => close(true));
  phone.addEventListener("change", () => {
    close();
    el.membersButton.setAttribute("aria-expanded",
      String(!phone.matches && !el.app.classList.contains("members-hidden")));
  });
  el.membersButton.setAttribute("aria-expanded", String(!phone.matches));

  return {
    close,
    isOpen: () => el.app.classList.contains("nav-open") || el.app.classList.contains("members-open"),
  };
}

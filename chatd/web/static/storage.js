// What the page keeps in the browser, as JSON under `chatd.<key>`: `local`
// (localStorage: the nickname, the rooms, a remembered sign-in token) lasts
// until it is removed; `session` (sessionStorage: a sign-in token without
// "Remember me") ends with the tab. Storage may be full or disabled (private
// windows, a locked-down browser): the client then works without it.

function keeper(area) {
  return {
    get(key, fallback) {
      try {
        const value = window[area].getItem(`chatd.${key}`);
        return value === null ? fallback : JSON.parse(value);
      } catch {
        return fallback;
      }
    },
    /** Keep `value` under `key`; null removes it. */
    set(key, value) {
      try {
        if (value === null) window[area].removeItem(`chatd.${key}`);
        else window[area].setItem(`chatd.${key}`, JSON.stringify(value));
      } catch {
        // Full or disabled: nothing is kept, and nothing breaks.
      }
    },
  };
}

export const local = keeper("localStorage");
export const session = keeper("sessionStorage");

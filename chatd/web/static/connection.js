// The WebSocket to chatd: one protocol line per text message, both ways.
// Reconnects by itself with exponential backoff and full jitter, and notices a
// dead connection with /ping (a phone that changed networks may never see a close).

const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 30000;
const PING_EVERY_MS = 30000;
const PING_TIMEOUT_MS = 15000;

/**
 * @typedef {object} ConnectionHandlers
 * @property {() => void} onOpen        the socket is open; the server's HELLO follows
 * @property {(line: string) => void} onLine
 * @property {(info: {delayMs: number, attempt: number, wasOpen: boolean}) => void} onRetry
 *           the socket closed and another try is scheduled
 * @property {() => void} onStopped     the socket closed and no retry follows (stop() was called)
 */

export class Connection {
  /** @param {string} url @param {ConnectionHandlers} handlers */
  constructor(url, handlers) {
    this.url = url;
    this.handlers = handlers;
    this.ws = null;
    this.attempt = 0; // failed tries since the last registration
    this.wanted = false; // should a socket be open?
    this.retryTimer = null;
    this.pingTimer = null;
    this.pongTimer = null;
    this.pingToken = null;
    this.pinging = false; // only after registration: before it, a line is a nickname
  }

  /** Open the socket now (cancelling a scheduled retry). */
  start() {
    this.wanted = true;
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    if (this.ws) return;
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch (err) {
      this._closed(false);
      return;
    }
    this.ws = ws;
    let opened = false;
    ws.addEventListener("open", () => {
      opened = true;
      this.handlers.onOpen();
    });
    ws.addEventListener("message", (event) => {
      if (ws !== this.ws || typeof event.data !== "string") return;
      this._armPing();
      this.handlers.onLine(event.data);
    });
    ws.addEventListener("close", () => {
      if (ws !== this.ws) return;
      this._closed(opened);
    });
  }

  /** Close and do not come back (the user quit, or must choose another nickname). */
  stop() {
    this.wanted = false;
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this._stopPing();
    const ws = this.ws;
    this.ws = null;
    if (ws) ws.close(1000);
    this.handlers.onStopped();
  }

  /** Drop the current socket and try again after a backoff, as after a lost connection. */
  restart() {
    const ws = this.ws;
    if (!ws) return;
    ws.close(4000);
    this._closed(true);
  }

  /** The server accepted us: the next loss starts the backoff from the beginning. */
  registered() {
    this.attempt = 0;
    this.pinging = true;
    this._armPing();
  }

  /** Try now instead of waiting for the scheduled retry (the network is back, the tab is visible). */
  retryNow() {
    if (this.wanted && !this.ws) this.start();
  }

  get open() {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  /** Send one line; false when the socket is not open. */
  send(line) {
    if (!this.open) return false;
    this.ws.send(line);
    return true;
  }

  /** A PONG carrying our token arrived. */
  pong(token) {
    if (token === this.pingToken) {
      clearTimeout(this.pongTimer);
      this.pongTimer = null;
      this.pingToken = null;
    }
  }

  _closed(wasOpen) {
    this._stopPing();
    this.ws = null;
    if (!this.wanted) return;
    // Equal jitter (a delay drawn from [cap/2, cap]) spreads the clients of a restarted server.
    const cap = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** this.attempt);
    const delayMs = Math.round(cap / 2 + Math.random() * (cap / 2));
    this.attempt += 1;
    this.retryTimer = setTimeout(() => this.start(), delayMs);
    this.handlers.onRetry({ delayMs, attempt: this.attempt, wasOpen });
  }

  _armPing() {
    if (!this.pinging) return;
    clearTimeout(this.pingTimer);
    if (this.pongTimer) return; // a ping is out; its deadline stands
    this.pingTimer = setTimeout(() => {
      if (!this.open) return;
      this.pingToken = `keepalive-${Date.now().toString(36)}`;
      this.ws.send(`/ping ${this.pingToken}`);
      this.pongTimer = setTimeout(() => {
        this.pongTimer = null;
        this.restart();
      }, PING_TIMEOUT_MS);
    }, PING_EVERY_MS);
  }

  _stopPing() {
    this.pinging = false;
    clearTimeout(this.pingTimer);
    clearTimeout(this.pongTimer);
    this.pingTimer = null;
    this.pongTimer = null;
    this.pingToken = null;
  }
}

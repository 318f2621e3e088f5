// The client's session cache: the chat sessions it holds in memory (decoder cache included), by id, shared by
// `client.sessions` and `client.chat.completions`, so a completion that names a session this client already holds
// continues it without a restore, and one it does not hold opens (restores) it once. Least recently used sessions are
// dropped beyond `capacity` (not disposed: a caller may still hold one; its memory goes with the last reference).

import type { ChatSession } from "./chat-session.ts";

export class SessionPool {
  private readonly sessions = new Map<string, ChatSession>();

  constructor(readonly capacity = 8) {}

  /** The held session `id` when its token is `token` (a wrong token never reaches a held cache). */
  get(id: string, token: string): ChatSession | undefined {
    const s = this.sessions.get(id);
    if (s === undefined || s.token !== token) return undefined;
    this.sessions.delete(id);
    this.sessions.set(id, s);
    return s;
  }

  put(session: ChatSession): void {
    this.sessions.delete(session.id);
    this.sessions.set(session.id, session);
    while (this.sessions.size > this.capacity) {
      const oldest = this.sessions.keys().next().value as string;
      this.sessions.delete(oldest);
    }
  }

  /** Forgets `id` (e.g. its held cache no longer matches the edge). */
  delete(id: string): void {
    this.sessions.delete(id);
  }

  get size(): number {
    return this.sessions.size;
  }
}

// Base of every resource class: holds the client that performs its requests.

import type { MlaEdge } from "../client.ts";

export abstract class APIResource {
  protected readonly _client: MlaEdge;
  constructor(client: MlaEdge) {
    this._client = client;
  }
}

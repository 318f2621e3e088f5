// The tenant's storage on the edge (tenant API key): bytes its chunk rows hold and the quota that applies.

import type { TenantUsage } from "../../format/wire/messages.ts";
import type { APIPromise } from "../core/api-promise.ts";
import { APIResource } from "../core/resource.ts";

export class StoreUsage extends APIResource {
  /** `GET /v1/usage`: stored bytes and `quotaBytes` (null when unlimited); appends are refused at the quota. */
  retrieve(options?: { signal?: AbortSignal }): APIPromise<TenantUsage> {
    return this._client.request({ method: "GET", path: "/v1/usage", signal: options?.signal });
  }
}

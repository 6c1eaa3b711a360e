/** What one finished HTTP request looks like to access logs, `weft tap` and tests. */
import type { ResponseFlag } from "../../telemetry/labels.js";

/** diagnostics_channel name of finished requests. */
export const REQUEST_CHANNEL = "weft:request";

/** A finished request, for logs, tap and tests. */
export interface RequestEvent {
  method: string;
  path: string;
  authority: string;
  status: number;
  grpcStatus: string;
  flags: ResponseFlag;
  durationMs: number;
  route: string;
  upstream?: string;
  upstreamCluster?: string;
  attempts: number;
  requestId: string;
  source: string;
  destinationWorkload?: string;
  bytesSent: number;
  bytesReceived: number;
  reason?: string;
}

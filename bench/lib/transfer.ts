/** One bulk download with curl: the -w format it is run with and the parser of what it prints. */

/** curl's --write-out format: status, bytes received, seconds from start to the last byte. */
export const CURL_TRANSFER_FORMAT = "%{http_code} %{size_download} %{time_total}";

/** A finished download. */
export interface Transfer {
  status: number;
  bytes: number;
  seconds: number;
}

/** Parses what curl printed with CURL_TRANSFER_FORMAT; throws naming the bad field. */
export function parseCurlTransfer(text: string): Transfer {
  const m = /^(\d{3}) (\d+) (\d+(?:\.\d+)?)$/.exec(text.trim());
  if (!m) throw new Error(`curl printed '${text.trim().slice(0, 100)}', expected '<status> <bytes> <seconds>'`);
  const t = { status: Number(m[1]), bytes: Number(m[2]), seconds: Number(m[3]) };
  if (t.seconds <= 0) throw new Error(`curl reported a transfer time of ${t.seconds} s`);
  return t;
}

/** Checks a download is the whole file with a 200, naming what differs. */
export function checkTransfer(t: Transfer, expectedBytes: number, what: string): void {
  if (t.status !== 200) throw new Error(`${what}: HTTP ${t.status}, expected 200`);
  if (t.bytes !== expectedBytes)
    throw new Error(`${what}: received ${t.bytes} bytes, expected ${expectedBytes} (the path cut the transfer short)`);
}

/**
 * Acceptance (issue 11): Istio's Bookinfo traffic-management tasks through weft's node proxies:
 * request routing (all v1, by end-user), traffic shifting (90/10, 50/50), fault injection (delay,
 * abort) and request timeouts, with the proxies' own request metrics. Fixtures are Istio-shaped
 * (short host names, no namespace) and applied with `-n bookinfo`.
 */
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach, expect, it } from "vitest";
import { BOOKINFO_NS, BOOKINFO_PORT } from "../../scripts/demo/bookinfo.js";
import { forceDown } from "../helpers/cluster.js";
import {
  applyIn,
  BOOKINFO_CLIENT,
  bookinfoUp,
  deleteIn,
  fqdn,
  getOnce,
  ISTIO,
  nodeOf,
  percent,
  productpageUrl,
  reviewsSplit,
  sourceRequests,
  waitForReviews,
} from "../helpers/l7.js";
import { vip } from "../helpers/mesh.js";
import { describePrivileged } from "../helpers/privileged.js";
import { waitFor } from "../helpers/wait.js";
import { testClusterName } from "../helpers/weft.js";

const C = testClusterName("lb");
const NS = BOOKINFO_NS;
const fixture = (f: string) => join(ISTIO, f);
const VIRTUAL_SERVICES = [
  "virtual-service-all-v1.yaml",
  "virtual-service-reviews-90-10.yaml",
  "virtual-service-reviews-50-v3.yaml",
  "virtual-service-reviews-test-v2.yaml",
  "virtual-service-ratings-test-delay.yaml",
  "virtual-service-ratings-test-abort.yaml",
  "virtual-service-reviews-v2-timeout.yaml",
];

/** A productpage answer, as far as these tests read it. */
interface Page {
  reviewsVersion: string;
  received: Record<string, string>;
  details: { received?: Record<string, string> };
  reviews: {
    version?: string;
    received?: Record<string, string>;
    ratingsCall?: { status: number; ms: number };
    ratings?: { received?: Record<string, string> };
  };
  calls: { reviews: { status: number; ms: number; error?: string }; details: { status: number } };
}

async function page(query: string): Promise<Page> {
  const r = await getOnce(C, BOOKINFO_CLIENT, productpageUrl(C, query));
  if (r.status !== 200) throw new Error(`productpage${query}: HTTP ${r.status} ${r.error ?? ""}`);
  return r.body as Page;
}

describePrivileged("L7: Bookinfo traffic management (routing, shifting, faults, timeouts) in the node proxies", () => {
  beforeAll(async () => {
    await bookinfoUp(C);
    await applyIn(C, NS, fixture("destination-rule-all.yaml"));
  }, 180_000);

  afterAll(async () => {
    await forceDown(C);
  });

  beforeEach(async () => {
    for (const f of VIRTUAL_SERVICES) await deleteIn(C, NS, fixture(f));
  });

  it("Bookinfo apps carry end-user, x-request-id, W3C and B3 trace headers to every call they make", async () => {
    const sent = {
      "x-request-id": "4f9a1c2e-req",
      traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
      tracestate: "weft=t1",
      "x-b3-traceid": "4bf92f3577b34da6a3ce929d0e0e4736",
      "x-b3-spanid": "00f067aa0ba902b7",
      "x-b3-sampled": "1",
    };
    // reviews v1 does not call ratings: wait for an answer from a version that does.
    const p = await waitFor(
      "an answer from reviews v2 or v3",
      async () => {
        const r = await getOnce(
          C,
          BOOKINFO_CLIENT,
          productpageUrl(C, "?user=jason"),
          Object.entries(sent).map(([k, v]) => `${k}:${v}`),
        );
        const body = r.body as Page;
        return body.reviewsVersion === "v2" || body.reviewsVersion === "v3" ? body : undefined;
      },
      20_000,
      50,
    );
    const expected = { ...sent, "end-user": "jason" };
    expect(p.details.received).toEqual(expected);
    expect(p.reviews.received).toEqual(expected);
    expect(p.reviews.ratings?.received).toEqual(expected);
  });

  it("routes every request to v1 (virtual-service-all-v1)", async () => {
    await applyIn(C, NS, fixture("virtual-service-all-v1.yaml"));
    await waitForReviews(C, "reviews all v1", (v) => Object.keys(v).join() === "v1");
    const r = await reviewsSplit(C, 500, 10);
    expect(r.codes).toEqual({ 200: 500 });
    expect(r.byHeader).toEqual({ v1: 500 });
  });

  it("shifts 90/10 between v1 and v2 within ±3 points over 2,000 requests", async () => {
    await applyIn(C, NS, fixture("virtual-service-reviews-90-10.yaml"));
    await waitForReviews(C, "reviews split v1/v2 only", (v) => (v.v2 ?? 0) > 0 && !v.v3 && (v.v1 ?? 0) > (v.v2 ?? 0), { sample: 200 });
    const r = await reviewsSplit(C, 2000, 20);
    expect(r.codes).toEqual({ 200: 2000 });
    expect(r.byHeader.v3 ?? 0).toBe(0);
    expect(Math.abs(percent(r.byHeader, "v1") - 90), JSON.stringify(r.byHeader)).toBeLessThanOrEqual(3);
    expect(Math.abs(percent(r.byHeader, "v2") - 10), JSON.stringify(r.byHeader)).toBeLessThanOrEqual(3);
  });

  it("shifts 50/50 between v1 and v3 within ±3 points over 2,000 requests", async () => {
    await applyIn(C, NS, fixture("virtual-service-reviews-50-v3.yaml"));
    await waitForReviews(C, "reviews split v1/v3 only", (v) => (v.v3 ?? 0) > 0 && (v.v1 ?? 0) > 0 && !v.v2, { sample: 100 });
    const r = await reviewsSplit(C, 2000, 20);
    expect(r.codes).toEqual({ 200: 2000 });
    expect(r.byHeader.v2 ?? 0).toBe(0);
    // The counts in the message, so a miss says what the split was.
    expect(Math.abs(percent(r.byHeader, "v1") - 50), JSON.stringify(r.byHeader)).toBeLessThanOrEqual(3);
    expect(Math.abs(percent(r.byHeader, "v3") - 50), JSON.stringify(r.byHeader)).toBeLessThanOrEqual(3);
  });

  it("routes end-user jason to v2 only and everybody else to v1 (virtual-service-reviews-test-v2)", async () => {
    await applyIn(C, NS, fixture("virtual-service-reviews-test-v2.yaml"));
    await waitForReviews(C, "jason on v2", (v) => Object.keys(v).join() === "v2", { query: "?user=jason" });
    const jason = await reviewsSplit(C, 300, 10, [], "?user=jason");
    expect(jason.byHeader).toEqual({ v2: 300 });
    // The same user by cookie, as a browser that signed in sends it.
    const byCookie = await reviewsSplit(C, 100, 5, ["cookie:user=jason"]);
    expect(byCookie.byHeader).toEqual({ v2: 100 });
    const others = await reviewsSplit(C, 300, 10, [], "?user=bob");
    expect(others.byHeader).toEqual({ v1: 300 });
    const anonymous = await reviewsSplit(C, 100, 5);
    expect(anonymous.byHeader).toEqual({ v1: 100 });
  });

  it("delays ratings 7 s for jason only (virtual-service-ratings-test-delay)", async () => {
    await applyIn(C, NS, fixture("virtual-service-reviews-test-v2.yaml"));
    await applyIn(C, NS, fixture("virtual-service-ratings-test-delay.yaml"));
    const delayed = await waitFor(
      "jason's ratings call delayed",
      async () => {
        const p = await page("?user=jason");
        if (p.reviewsVersion !== "v2" || (p.reviews.ratingsCall?.ms ?? 0) < 6900)
          throw new Error(`reviews ${p.reviewsVersion}, ratings call ${JSON.stringify(p.reviews.ratingsCall)}`);
        return p;
      },
      40_000,
      100,
    );
    expect(delayed.reviews.ratingsCall?.status).toBe(200);
    expect(delayed.reviews.ratingsCall?.ms).toBeGreaterThanOrEqual(6900);
    expect(delayed.reviews.ratingsCall?.ms).toBeLessThanOrEqual(7500);
    // Another user's call to ratings is not delayed (it must not wait for the fault's 7 s).
    const other = await getOnce(C, BOOKINFO_CLIENT, `http://${vip(C, NS, "ratings")}:${BOOKINFO_PORT}/ratings/0`, ["end-user:bob"]);
    expect(other.status).toBe(200);
    expect(other.ms).toBeLessThan(6900);
  });

  it("aborts ratings with 500 for jason only, counted with response flag FI (virtual-service-ratings-test-abort)", async () => {
    await applyIn(C, NS, fixture("virtual-service-reviews-test-v2.yaml"));
    await applyIn(C, NS, fixture("virtual-service-ratings-test-abort.yaml"));
    // jason goes to reviews v2, whose node proxy is the source of its ratings calls.
    const node = nodeOf(C, NS, "reviews-v2");
    const labels = { destination_service: fqdn(NS, "ratings"), response_code: "500", response_flags: "FI" };
    await waitFor(
      "jason's ratings call aborted",
      async () => {
        const p = await page("?user=jason");
        if (p.reviewsVersion !== "v2" || p.reviews.ratingsCall?.status !== 500)
          throw new Error(`reviews ${p.reviewsVersion}, ratings call ${JSON.stringify(p.reviews.ratingsCall)}`);
        return true;
      },
      20_000,
      100,
    );
    const before = await sourceRequests(C, node, labels);
    for (let i = 0; i < 10; i++) {
      const p = await page("?user=jason");
      expect(p.reviews.ratingsCall?.status).toBe(500);
    }
    await waitFor("10 more FI aborts counted", async () => (await sourceRequests(C, node, labels)) >= before + 10, 10_000, 100);
    // Not jason: ratings answers (called directly, as reviews v1 makes no ratings call).
    const other = await getOnce(C, BOOKINFO_CLIENT, `http://${vip(C, NS, "ratings")}:${BOOKINFO_PORT}/ratings/0`, ["end-user:bob"]);
    expect(other.status).toBe(200);
  });

  it("times out productpage's reviews call after 0.5 s with response flag UT (request-timeouts task)", async () => {
    await applyIn(C, NS, fixture("virtual-service-reviews-v2-timeout.yaml"));
    const node = nodeOf(C, NS, "productpage-v1");
    const labels = { destination_service: fqdn(NS, "reviews"), response_code: "504", response_flags: "UT" };
    const timedOut = await waitFor(
      "productpage's reviews call timed out",
      async () => {
        const p = await page("");
        if (p.calls.reviews.status !== 504) throw new Error(`reviews call ${JSON.stringify(p.calls.reviews)}`);
        return p;
      },
      20_000,
      100,
    );
    expect(timedOut.calls.reviews.ms).toBeGreaterThanOrEqual(500);
    expect(timedOut.calls.reviews.ms).toBeLessThanOrEqual(700);
    expect(timedOut.calls.details.status).toBe(200); // the page still renders, without reviews
    const before = await sourceRequests(C, node, labels);
    const again = await page("");
    expect(again.calls.reviews.status).toBe(504);
    await waitFor("the UT timeout counted", async () => (await sourceRequests(C, node, labels)) > before, 10_000, 100);
  });
});

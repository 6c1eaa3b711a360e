import { describe, expect, it } from "vitest";
import { endUser, forwardHeaders } from "../../scripts/demo/headers.js";

describe("Bookinfo header propagation", () => {
  it("forwards end-user, request id, W3C and B3 trace headers and nothing else", () => {
    const out = forwardHeaders({
      "end-user": "jason",
      "x-request-id": "r1",
      traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
      tracestate: "a=b",
      "x-b3-traceid": "t",
      "x-b3-spanid": "s",
      "x-b3-sampled": "1",
      cookie: "user=jason",
      authorization: "Bearer x",
      host: "productpage:9080",
    });
    expect(out).toEqual({
      "end-user": "jason",
      "x-request-id": "r1",
      traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
      tracestate: "a=b",
      "x-b3-traceid": "t",
      "x-b3-spanid": "s",
      "x-b3-sampled": "1",
    });
  });

  it("takes productpage's user from ?user=, then an end-user header, then a user= cookie", () => {
    const u = (q: string, h: Record<string, string>) => endUser(new URL(`http://x/productpage${q}`), h);
    expect(u("?user=jason", { "end-user": "bob", cookie: "user=carol" })).toBe("jason");
    expect(u("", { "end-user": "bob", cookie: "user=carol" })).toBe("bob");
    expect(u("", { cookie: "theme=dark; user=carol" })).toBe("carol");
    expect(u("", {})).toBeUndefined();
  });

  it("treats a user name that could smuggle a header as anonymous, not as another user", () => {
    expect(endUser(new URL("http://x/?user=jason%0d%0ax-evil:1"), {})).toBeUndefined();
    expect(endUser(new URL("http://x/"), { "end-user": "a b" })).toBeUndefined();
    expect(endUser(new URL(`http://x/?user=${"a".repeat(65)}`), {})).toBeUndefined();
  });
});

/**
 * Policy that cannot be read never means "no policy". When a policy kind is installed but
 * unreadable and nothing of it has ever been read, the controller cannot know what applies to a
 * workload, so workloads it has not enrolled yet are held out of the mesh until it can; those
 * already enrolled keep their state. The conditions are shown by `weft controller status`.
 */
import type { Workload } from "./api/model.js";
import type { MeshModel, SourceKind } from "./translate/types.js";

/** Kinds whose absence would widen access (no AuthorizationPolicy = allow all, no PeerAuthentication = permissive). */
const POLICY_KINDS: readonly SourceKind[] = ["AuthorizationPolicy", "PeerAuthentication"];

/** A source kind that cannot be read, as the Kubernetes source reports it. */
export interface UnreadableKind {
  kind: SourceKind;
  /** Objects of the kind were read before and are kept. */
  known: boolean;
  error: string;
}

/** A condition of the controller for operators (status). */
export interface SourceCondition {
  type: "PolicyUnknown" | "PolicyStale" | "KindUnreadable";
  kinds: SourceKind[];
  message: string;
}

/** The conditions that unreadable kinds put the controller in. */
export function sourceConditions(unreadable: readonly UnreadableKind[]): SourceCondition[] {
  const policy = unreadable.filter((u) => POLICY_KINDS.includes(u.kind));
  const out: SourceCondition[] = [];
  const unknown = policy.filter((u) => !u.known);
  if (unknown.length)
    out.push({
      type: "PolicyUnknown",
      kinds: unknown.map((u) => u.kind),
      message: `${unknown.map((u) => `${u.kind} cannot be read (${u.error})`).join("; ")}: new workloads are not enrolled until policy is known`,
    });
  const stale = policy.filter((u) => u.known);
  if (stale.length)
    out.push({
      type: "PolicyStale",
      kinds: stale.map((u) => u.kind),
      message: `${stale.map((u) => `${u.kind} cannot be read (${u.error})`).join("; ")}: the last known policies stay in force`,
    });
  const other = unreadable.filter((u) => !POLICY_KINDS.includes(u.kind));
  if (other.length)
    out.push({
      type: "KindUnreadable",
      kinds: other.map((u) => u.kind),
      message: `${other.map((u) => `${u.kind} cannot be read (${u.error})`).join("; ")}: the last known objects are kept`,
    });
  return out;
}

/**
 * The model with enrolment held for workloads not enrolled before (previouslyEnrolled: uids
 * enrolled in the last pushed state). Workloads are copied, never changed in place (the
 * translation memo shares them).
 */
export function holdNewEnrolments(model: MeshModel, previouslyEnrolled: ReadonlySet<string>, why: string): MeshModel {
  let held = 0;
  const workloads = model.workloads.map((w): Workload => {
    if (!w.enrolled || previouslyEnrolled.has(w.uid)) return w;
    held++;
    return { ...w, enrolled: false, enrolmentReason: `held out of the mesh: ${why} (would be: ${w.enrolmentReason})` };
  });
  return held ? { ...model, workloads } : model;
}

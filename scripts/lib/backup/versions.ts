// MLflow versions as .env's MLFLOW_VERSION writes them (3.18.0, 3.19.0rc1): compared by their numeric parts, a
// pre-release (rc, dev) before its release.
const PATTERN = /^(\d+)\.(\d+)(?:\.(\d+))?(?:[.-]?((?:a|b|rc|dev)\d*))?$/;

export function isVersion(text: string): boolean {
  return PATTERN.test(text);
}

/** <0 when a is older than b, 0 when equal, >0 when newer. Throws on a text that is no version. */
export function compareVersions(a: string, b: string): number {
  const pa = PATTERN.exec(a);
  const pb = PATTERN.exec(b);
  if (!pa || !pb) throw new Error(`not a version: ${pa ? b : a}`);
  for (let i = 1; i <= 3; i++) {
    const d = Number(pa[i] ?? 0) - Number(pb[i] ?? 0);
    if (d) return d;
  }
  if (!pa[4] !== !pb[4]) return pa[4] ? -1 : 1;
  return (pa[4] ?? "").localeCompare(pb[4] ?? "", "en", { numeric: true });
}

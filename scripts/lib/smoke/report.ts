// How a smoke run reads: a line per check as it finishes, then one summary line (or everything as JSON).
import type { CheckResult, SmokeReport } from "./checks.ts";

const LABEL = { pass: "PASS", fail: "FAIL", skip: "SKIP" } as const;
const NAME_WIDTH = 23;

/** One check's line(s). Pass the same `shownAdvice` set for a whole run to print each fix once ("as above" after). */
export function formatResult(result: CheckResult, shownAdvice?: Set<string>): string {
  const ms = `${result.ms} ms`.padStart(8);
  let line = `  ${LABEL[result.status]}  ${result.name.padEnd(NAME_WIDTH)}${ms}`;
  if (result.detail) line += `  ${result.detail}`;
  if (result.warning) line += `\n        warning: ${result.warning}`;
  if (result.advice) {
    const repeated = shownAdvice?.has(result.advice);
    shownAdvice?.add(result.advice);
    line += `\n        fix: ${repeated ? "(as above)" : result.advice}`;
  }
  return line;
}

export function formatHeader(url: string, user: string): string {
  return `smoke: ${url} as ${user}`;
}

export function formatSummary(report: SmokeReport): string {
  const { pass, fail, skip } = report.counts;
  const warnings = report.results.filter((r) => r.warning).length;
  const verdict = report.ok ? "OK" : "FAILED";
  return `smoke: ${verdict}: ${pass} passed, ${fail} failed, ${skip} skipped${warnings ? `, ${warnings} warning${warnings === 1 ? "" : "s"}` : ""} in ${(report.totalMs / 1000).toFixed(2)} s`;
}

/** The --json document: the report as is (no secrets in it: only the URL and user name). */
export function toJson(report: SmokeReport): string {
  return JSON.stringify(report, null, 2);
}

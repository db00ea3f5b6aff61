// The smoke checks after a restore or an upgrade, through the stack's proxy with the settings `npm run smoke` uses
// (.env, secrets/, or MLFLOW_TRACKING_* variables): the restored or upgraded stack must really serve.
import { runSmoke } from "../smoke/checks.ts";
import { resolveSettings } from "../smoke/config.ts";
import { formatResult, formatSummary } from "../smoke/report.ts";

export async function smokeStack(dir: string, expectedVersion: string | undefined, log: (line: string) => void): Promise<{ ok: boolean; summary: string }> {
  const settings = resolveSettings({}, process.env, dir);
  if (expectedVersion) settings.expectedVersion = expectedVersion;
  const report = await runSmoke(settings, { onResult: (r) => log(formatResult(r)) });
  const summary = formatSummary(report);
  log(summary);
  return { ok: report.ok, summary };
}

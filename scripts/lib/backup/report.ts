// Progress lines (stderr) and the plain summaries of backup and restore.
import type { BackupResult } from "./backup.ts";
import type { RestoreResult } from "./restore.ts";

export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) (v /= 1024), i++;
  return `${i ? v.toFixed(1) : v} ${units[i]}`;
}

/** Phase lines as they come; object progress at most every `everyMs` (and always the last one). */
export function progressPrinter(out: NodeJS.WritableStream, script: string, everyMs = 2000) {
  let last = 0;
  return {
    phase: (message: string) => out.write(`${script}: ${message}\n`),
    objects: (p: { objects: number; bytes: number; total: number; totalBytes: number }) => {
      const now = Date.now();
      if (p.objects !== p.total && now - last < everyMs) return;
      last = now;
      out.write(`${script}:   objects ${p.objects}/${p.total}, ${formatBytes(p.bytes)} of ${formatBytes(p.totalBytes)}\n`);
    },
  };
}

export function formatBackupSummary(r: BackupResult): string {
  const m = r.manifest;
  const rows = Object.values(m.database.tables).reduce((a, b) => a + b, 0);
  return [
    `Backup complete: ${r.where}/${r.name} (${r.seconds.toFixed(1)} s)`,
    `  database   ${formatBytes(m.database.bytes)} dump, ${rows} rows in ${Object.keys(m.database.tables).length} tables, MLflow ${m.mlflowVersion ?? "version unknown"}, schema ${m.alembicRevision ?? "none"}`,
    `  objects    ${m.objects.count} (${formatBytes(m.objects.bytes)}) from bucket ${m.objects.bucket}: ${m.objects.copied} copied, ${m.objects.reused} unchanged since ${r.previous ?? "-"}`,
    `  secrets    not in the backup (.env and secrets/ stay with the stack; keep your own copy of them)`,
    ...(r.pruned.length ? [`  pruned     ${r.pruned.join(", ")}`] : []),
    ...(r.incomplete.length ? [`  note       incomplete backups left as they are (not counted, not used): ${r.incomplete.join(", ")}`] : []),
  ].join("\n");
}

export function formatRestoreSummary(r: RestoreResult): string {
  return [
    `Restore complete: ${r.from}/${r.name} (${r.seconds.toFixed(1)} s)`,
    `  database   ${r.verified.rows} rows in ${r.verified.tables} tables, counts match the manifest`,
    `  objects    ${r.verified.objects} (${formatBytes(r.verified.bytes)}) match the manifest: ${r.objects.uploaded} uploaded, ${r.objects.skipped} already there${r.objects.deleted ? `, ${r.objects.deleted} not in the backup deleted` : ""}`,
    `  timings    checks ${r.phases.checks.toFixed(1)} s; objects ${r.phases.objects.toFixed(1)} s and database ${r.phases.database.toFixed(1)} s (at the same time); verify ${r.phases.verify.toFixed(1)} s`,
    ...(r.needsUpgrade ? [`  NEXT       ${r.needsUpgrade}`] : []),
  ].join("\n");
}

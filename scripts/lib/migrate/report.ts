// What the user reads: progress per table (rows/s, ETA; updated in place on a terminal) and the final summary.
import type { ArtifactPlan, ArtifactResult } from "./artifacts.ts";
import type { MigrateEvent, MigrateResult } from "./migrate.ts";

const fmt = (n: number) => Math.round(n).toLocaleString("en-US");

export function progressPrinter(out: NodeJS.WriteStream | { write(s: string): unknown; isTTY?: boolean }) {
  const tty = !!out.isTTY;
  let started = 0;
  let lastLine = 0;
  let open = false;
  const line = (s: string, final: boolean) => {
    if (tty) {
      out.write(`\r\x1b[2K${s}${final ? "\n" : ""}`);
      open = !final;
    } else if (final || Date.now() - lastLine > 5000) {
      out.write(s + "\n");
      lastLine = Date.now();
    }
  };
  return (e: MigrateEvent) => {
    switch (e.type) {
      case "phase":
        if (open) out.write("\n"), (open = false);
        out.write(`migrate: ${e.message}\n`);
        break;
      case "table-start":
        started = performance.now();
        lastLine = Date.now();
        break;
      case "table-progress": {
        const secs = (performance.now() - started) / 1000;
        const rate = e.done / Math.max(secs, 1e-3);
        const eta = rate > 0 ? (e.total - e.done) / rate : 0;
        line(`  ${e.table.padEnd(28)} ${fmt(e.done).padStart(12)} / ${fmt(e.total)} rows  ${fmt(rate)} rows/s  ETA ${eta.toFixed(0)} s`, false);
        break;
      }
      case "table-done":
        line(`  ${e.table.padEnd(28)} ${fmt(e.rows).padStart(12)} rows  ${e.seconds.toFixed(1)} s  ${fmt(e.rows / Math.max(e.seconds, 1e-3))} rows/s`, true);
        break;
    }
  };
}

export function formatSummary(r: MigrateResult, artifacts?: ArtifactPlan, uploaded?: ArtifactResult): string {
  const lines: string[] = [];
  if (r.dryRun) {
    lines.push(`Dry run: nothing was written. Would copy ${fmt(r.plan.totalRows)} rows from ${r.plan.source} into ${r.plan.target} (schema ${r.plan.alembicVersion}):`);
    for (const t of r.plan.tables) if (t.rows) lines.push(`  ${t.table.padEnd(28)} ${fmt(t.rows).padStart(12)}`);
    if (r.plan.replace) lines.push(`The target's current data would be REPLACED (${r.plan.targetUserData.join(", ")}).`);
  } else {
    lines.push(`${"table".padEnd(28)} ${"source rows".padStart(12)} ${"target rows".padStart(12)}  checksum`);
    for (const v of r.verified) {
      if (v.sourceRows === 0 && v.targetRows === 0) continue;
      lines.push(`${v.table.padEnd(28)} ${fmt(v.sourceRows).padStart(12)} ${fmt(v.targetRows).padStart(12)}  ${v.ok ? "ok" : "MISMATCH"}`);
    }
    const empty = r.verified.filter((v) => v.sourceRows === 0 && v.targetRows === 0).length;
    lines.push(`(${empty} empty tables verified empty)`);
    for (const s of r.sequences) lines.push(`sequence ${s.sequence}: next ${s.table}.${s.column} = ${s.next}`);
    const moved = r.locations.filter((l) => l.rows > 0);
    if (moved.length) lines.push(`artifact locations rewritten to mlflow-artifacts:/ — ${moved.map((l) => `${l.table}.${l.column}: ${l.rows}`).join(", ")}`);
    lines.push(`Migrated ${fmt(r.plan.totalRows)} rows in ${r.seconds.toFixed(1)} s (${fmt(r.rowsPerSecond)} rows/s), verified and committed.`);
  }
  if (artifacts) {
    const done = uploaded ? `${uploaded.uploaded} uploaded (${fmt(uploaded.bytesUploaded)} bytes), ${uploaded.skipped} already there` : `${artifacts.files} files, ${fmt(artifacts.bytes)} bytes to upload`;
    lines.push(`Artifacts: ${artifacts.dir} -> s3://${artifacts.bucket}/: ${done}.`);
    if (artifacts.missing.length) {
      lines.push(`${artifacts.missing.length} location(s) point at nothing in ${artifacts.dir} (a run that logged no artifacts has no folder), e.g.:`);
      for (const m of artifacts.missing.slice(0, 5)) lines.push(`  ${m}`);
    }
  }
  return lines.join("\n");
}

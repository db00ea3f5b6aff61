// What the user reads: progress per table (rows/s, ETA; updated in place on a terminal) and the final summary.
import { describeMissing, type ArtifactPlan, type ArtifactResult } from "./artifacts.ts";
import { describeBadText } from "./text-check.ts";
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
  if (artifacts) lines.push(...formatArtifacts(artifacts, uploaded, r));
  for (const b of r.plan.invalidText) lines.push(`replaced with U+FFFD: ${describeBadText(b)}`);
  const disabled = r.plan.webhooks.filter((w) => w.copiedAs !== w.status);
  if (r.plan.webhooks.length) {
    lines.push(
      `Webhooks: ${r.plan.webhooks.length} ${r.dryRun ? "would be " : ""}copied${disabled.length ? `, ${disabled.length} of them DISABLED (they call the old environment; enable each in MLflow once its URL is right, or re-run with --keep-webhooks-active)` : ""}:`,
    );
    for (const w of r.plan.webhooks) lines.push(`  ${w.name}  ${w.url}  ${w.status}${w.copiedAs !== w.status ? ` -> ${w.copiedAs}` : ""}`);
  }
  if (r.plan.replace) lines.push(`The replaced data's artifact objects stay in the bucket: migrate deletes nothing in S3.`);
  return lines.join("\n");
}

/** The artifact plan (and what became of it) in a few lines. */
export function formatArtifacts(a: ArtifactPlan, done: ArtifactResult | undefined, r: MigrateResult): string[] {
  const lines: string[] = [];
  const k = a.kinds;
  lines.push(
    `Artifact locations: ${k.local} local (file:// or a path), ${k.server} mlflow-artifacts:/, ${k.remote} remote (kept as they are), ${k.reference} references (models:/, runs:/, …).`,
  );
  if (a.skipped) {
    const live = a.missing.filter((m) => m.live && m.required);
    lines.push(`--no-artifacts: no files were copied; ${live.length} live run/model location(s) name files the stack does not have (they point at nothing there).`);
  } else if (a.bucket) {
    lines.push(`Artifacts: ${fmt(a.files)} files, ${fmt(a.bytes)} bytes from ${a.dir}${a.root ? ` (recorded as ${a.root})` : ""} -> s3://${a.bucket}/; ${a.rewritten} location(s) rewritten to mlflow-artifacts:/.`);
    if (done) lines.push(`  ${done.uploaded} uploaded (${fmt(done.bytesUploaded)} bytes), ${done.skipped} already there${r.artifactsVerified ? `; all ${fmt(a.files)} checked in the bucket (size and checksum) before the commit` : ""}.`);
  }
  if (!a.skipped && a.missing.length) {
    const live = a.missing.filter((m) => m.live && m.required);
    lines.push(
      `${a.missing.length} location(s) point at nothing${live.length ? ` (${live.length} of live runs/models${a.allowMissing ? ", accepted with --allow-missing-artifacts" : ""})` : " (deleted runs/models, experiments or traces without files)"}, e.g.:`,
    );
    for (const m of [...live, ...a.missing.filter((m) => !(m.live && m.required))].slice(0, 5)) lines.push(`  ${describeMissing(m)}`);
  }
  if (a.remote.length) lines.push(`Remote locations kept as they are (the stack's MLflow needs access to them): ${a.remote.slice(0, 3).join(", ")}${a.remote.length > 3 ? ", …" : ""}`);
  return lines;
}

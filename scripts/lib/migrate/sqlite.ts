// better-sqlite3, safe from a Node 24 abort. Import Database from here, never from "better-sqlite3".
//
// From Node 24.19.0 the header-only node::ObjectWrap (node_object_wrap.h; nodejs/node#63642, backported) adds an
// environment cleanup hook per object and removes it in its destructor. better-sqlite3 12.x builds its Database,
// Statement, StatementIterator and Backup on node::ObjectWrap, so an addon compiled against those headers aborts the
// process ("Assertion failed: (env) != nullptr" in node::RemoveEnvironmentCleanupHook, from Statement::~Statement)
// when V8 garbage-collects one of them: open or closed, finalized or not, on the main thread or a worker (seen in
// collections that allocation triggers, not in every one; an explicit gc() did not abort) (nodejs/node#65446, open).
// Verified on 24.21.0: built against 24.18.1's headers the same addon does not abort; Node 20 and 22 do not have the
// change. Closing what we open does not help: it is the JS object's collection that aborts.
//
// The way around it: no such object is ever collected. Every one is kept reachable until its thread ends; Node then
// frees it with the environment, through the very cleanup hook (verified on 24.21.0: a worker that ends by itself, a
// terminated worker mid-read, the main thread's exit). The cost is a few hundred small objects per migration (a handful
// of statements per table); a database's statements are finalized when it is closed, as before.
// better-sqlite3 13 (N-API, not node::ObjectWrap) is not affected, but needs Node 22.
import Database from "better-sqlite3";
import { createRequire } from "node:module";
import { dirname } from "node:path";

// On the addon object itself: a second copy of this module in the same thread (vitest loads modules anew per test
// file) finds the addon already patched and shares its list.
const KEPT = Symbol.for("mlflow-stack.sqlite.kept");

interface NativeAddon {
  Database: new (...args: unknown[]) => object;
  Statement: { prototype: Record<string, unknown> };
  [KEPT]?: object[];
}

/** The addon object better-sqlite3 itself loads (lib/database.js: require('bindings')('better_sqlite3.node')); Node
 * loads an addon once per thread, so this is the same object. */
function nativeAddon(): NativeAddon {
  const pkg = createRequire(import.meta.url).resolve("better-sqlite3/package.json");
  const addon = createRequire(pkg)("bindings")({ bindings: "better_sqlite3.node", module_root: dirname(pkg) }) as NativeAddon;
  if (typeof addon.Database !== "function" || typeof addon.Statement?.prototype?.iterate !== "function") {
    throw new Error("better-sqlite3's native addon has an unexpected shape; scripts/lib/migrate/sqlite.ts needs updating");
  }
  return addon;
}

function keepEveryNativeObject(addon: NativeAddon): object[] {
  const existing = addon[KEPT];
  if (existing) return existing;
  const kept: object[] = [];
  const keep = <T>(o: T): T => (kept.push(o as object), o);
  const NativeDatabase = addon.Database;
  // Objects the native code makes and hands back: statements (also pragma's), iterators, backups.
  const methods: [Record<string, unknown>, string][] = [
    [NativeDatabase.prototype as Record<string, unknown>, "prepare"],
    [NativeDatabase.prototype as Record<string, unknown>, "backup"],
    [addon.Statement.prototype, "iterate"],
  ];
  for (const [proto, name] of methods) {
    const native = proto[name] as (...args: unknown[]) => unknown;
    proto[name] = function (this: unknown, ...args: unknown[]) {
      return keep(native.apply(this, args));
    };
  }
  // Databases: lib/database.js constructs `new addon.Database(...)` each time.
  addon.Database = class extends NativeDatabase {
    constructor(...args: unknown[]) {
      super(...args);
      keep(this);
    }
  };
  addon[KEPT] = kept;
  return kept;
}

const kept = keepEveryNativeObject(nativeAddon());

/** How many better-sqlite3 objects this thread keeps (for the tests). */
export function keptObjects(): number {
  return kept.length;
}

export default Database;

/** The skip helper (test/helpers/skip.ts): what blocks a test, and that a blocked test is registered as skipped with its reason. */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type Test } from 'uvu';
import * as assert from 'uvu/assert';
import { announce, firstBlocker, needsCommand, needsPath, needsQemu, needsRoot, needsTun, setAnnounce, testIf } from './skip.js';

test('needsCommand finds executables on PATH, and names the Debian package when one is missing', () => {
  const dir = mkdtempSync(join(tmpdir(), 'dmabox-skip-'));
  try {
    writeFileSync(join(dir, 'tool'), '#!/bin/sh\n');
    chmodSync(join(dir, 'tool'), 0o755);
    writeFileSync(join(dir, 'plain'), '');
    chmodSync(join(dir, 'plain'), 0o644);
    assert.is(needsCommand('tool', 'tool-pkg', `/nonexistent:${dir}`), null);
    assert.is(
      needsCommand('plain', 'plain-pkg', dir),
      'needs the command plain (Debian package plain-pkg; scripts/setup-host.sh installs it as root)',
      'not executable',
    );
    assert.match(needsCommand('absent', 'absent-pkg', dir)!, /needs the command absent \(Debian package absent-pkg/);
    assert.match(needsCommand('tool', 'tool-pkg', '')!, /needs the command tool/, 'an empty PATH finds nothing');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('needsPath, needsRoot, needsTun, needsQemu say what is missing', () => {
  assert.is(needsPath('/', 'the root'), null);
  assert.is(needsPath('/nonexistent/x', 'a thing'), 'needs /nonexistent/x (a thing)');
  assert.is(needsRoot() === null, process.getuid?.() === 0);
  assert.match(needsRoot() ?? 'needs root (running as uid 1)', /^needs root \(running as uid \d+\)$/);
  const tun = needsTun();
  assert.ok(tun === null || tun.includes('/dev/net/tun'));
  const qemu = needsQemu();
  assert.ok(qemu === null || qemu.includes('qemu-system-x86'));
});

test('firstBlocker: the first reason, or null when nothing blocks', () => {
  assert.is(firstBlocker(), null);
  assert.is(firstBlocker(null, null), null);
  assert.is(firstBlocker(null, 'a', 'b'), 'a');
});

test('testIf: the suite itself when nothing blocks; otherwise each test registered with skip, its reason printed', () => {
  const skipped: (string | undefined)[] = [];
  const fake = Object.assign(() => assert.unreachable('a blocked test must not be registered to run'), {
    skip: (name?: string) => skipped.push(name),
  }) as unknown as Test;
  assert.is(testIf(null, fake), fake);
  const lines: string[] = [];
  const before = announce;
  setAnnounce((l) => lines.push(l));
  try {
    const gated = testIf('needs root (running as uid 1000)', fake);
    gated('makes a TAP interface', () => assert.unreachable('a blocked test must not run'));
  } finally {
    setAnnounce(before);
  }
  assert.equal(skipped, ['makes a TAP interface']);
  assert.equal(lines, ['  skipped: makes a TAP interface: needs root (running as uid 1000)']);
});

test.run();

/**
 * deploy/: each file checked by the tool that reads it (haproxy -c, nginx -t, systemd-analyze
 * verify, the Kubernetes schemas of kubernetes-models, dockerfile-ast), and for the settings the
 * service relies on: health checks on /health, no retry of a POST that may have reached a host,
 * limits and timeouts matching the service's, the lame-duck period longer than the balancer's
 * detection, the drain inside the grace periods. The container's start command is run for real in
 * deploy-container.e2e.test.ts.
 */
import { describe, expect, it } from '@jest/globals';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DockerfileParser } from 'dockerfile-ast';
import { parseAllDocuments } from 'yaml';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler';
import { StatefulSet } from 'kubernetes-models/apps/v1/StatefulSet';
import { Service } from 'kubernetes-models/v1/Service';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { PodMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor';
import { loadConfig } from '../../src/config/config.js';
import { ROOT } from '../support/server.js';

const DEPLOY = join(ROOT, 'deploy');
const defaults = loadConfig({});
const read = (path: string) => readFileSync(join(DEPLOY, path), 'utf8');
/** The file without its comment lines (the settings only). */
const settings = (path: string) =>
  read(path)
    .split('\n')
    .filter((l) => !/^\s*#/.test(l))
    .map((l) => l.replace(/\s+#.*$/, ''))
    .join('\n');
const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
/** `500ms`, `2s`, `35s` in milliseconds. */
const ms = (v: string) => Number(/^(\d+)(ms|s)$/.exec(v)![1]) * (v.endsWith('ms') ? 1 : 1000);

describe('deploy/haproxy/haproxy.cfg', () => {
  const cfg = settings('haproxy/haproxy.cfg');
  const env = {
    ...process.env,
    LISTEN: ':18080',
    HOST1: '10.0.0.11:8888',
    HOST2: '10.0.0.12:8888',
    HOST3: '10.0.0.13:8888',
  };

  it('is valid for haproxy -c', () => {
    if (!has('haproxy')) throw new Error('haproxy is not installed (CI installs it: .ci/run)');
    const r = spawnSync('haproxy', ['-c', '-f', join(DEPLOY, 'haproxy/haproxy.cfg')], {
      env,
      encoding: 'utf8',
    });
    expect(r.stdout + r.stderr).toMatch(/Configuration file is valid/);
    expect(r.status).toBe(0);
    // The check can fail: an unknown keyword is refused.
    const dir = mkdtempSync(join(tmpdir(), 'haproxy-'));
    writeFileSync(join(dir, 'bad.cfg'), cfg.replace('balance leastconn', 'balance nonsense'));
    expect(spawnSync('haproxy', ['-c', '-f', join(dir, 'bad.cfg')], { env }).status).not.toBe(0);
    rmSync(dir, { recursive: true });
  });

  it('checks /health often, retries only failed connections, and matches the service limits', () => {
    expect(cfg).toMatch(/option httpchk GET \/health\n/);
    const inter = ms(/inter (\S+)/.exec(cfg)![1]);
    const fall = Number(/fall (\d+)/.exec(cfg)![1]);
    expect(inter * fall).toBeLessThanOrEqual(2000);
    expect(cfg).toMatch(/retry-on conn-failure\n/);
    expect(cfg).not.toMatch(/retry-on .*(response-timeout|all-retryable-errors|50[0-9])/);
    expect(cfg).toMatch(/option redispatch/);
    expect(cfg).toMatch(/http-reuse safe/);
    expect(ms(/timeout client (\S+)/.exec(cfg)![1])).toBeGreaterThan(defaults.bodyTimeoutMs);
    expect(ms(/timeout server (\S+)/.exec(cfg)![1])).toBeGreaterThan(defaults.requestTimeoutMs);
    expect(Number(/content-length\) gt (\d+)/.exec(cfg)![1])).toBe(defaults.maxBodyBytes);
    // The hosts' lame-duck period of the other deploy files covers the detection time.
    expect(Number(/SHUTDOWN_DELAY_MS=(\d+)/.exec(read('Dockerfile'))![1])).toBeGreaterThan(
      inter * fall,
    );
    expect(
      Number(/SHUTDOWN_DELAY_MS=(\d+)/.exec(read('systemd/ndjson-ingest.service'))![1]),
    ).toBeGreaterThan(inter * fall);
  });
});

describe('deploy/nginx/nginx.conf', () => {
  const conf = settings('nginx/nginx.conf');
  it('is valid for nginx -t', () => {
    if (!has('nginx')) throw new Error('nginx is not installed (CI installs it: .ci/run)');
    const prefix = mkdtempSync(join(tmpdir(), 'nginx-'));
    const r = spawnSync(
      'nginx',
      ['-t', '-c', join(DEPLOY, 'nginx/nginx.conf'), '-p', `${prefix}/`],
      { encoding: 'utf8' },
    );
    expect(r.stderr).toMatch(/test is successful/);
    writeFileSync(join(prefix, 'bad.conf'), conf.replace('least_conn;', 'least_conn bogus;'));
    expect(
      spawnSync('nginx', ['-t', '-c', join(prefix, 'bad.conf'), '-p', `${prefix}/`]).status,
    ).not.toBe(0);
    rmSync(prefix, { recursive: true });
  });

  it('streams bodies, keeps connections, never retries a sent POST, matches the limits', () => {
    expect(conf).toMatch(/proxy_request_buffering off;/);
    expect(conf).toMatch(/keepalive \d+;/);
    expect(conf).toMatch(/proxy_http_version 1\.1;/);
    expect(conf).toMatch(/proxy_next_upstream error;/);
    expect(conf).not.toMatch(/non_idempotent/);
    expect(Number(/client_max_body_size (\d+)m;/.exec(conf)![1]) * 2 ** 20).toBe(
      defaults.maxBodyBytes,
    );
    expect(ms(/client_body_timeout (\S+);/.exec(conf)![1])).toBeGreaterThan(defaults.bodyTimeoutMs);
    expect(ms(/proxy_read_timeout (\S+);/.exec(conf)![1])).toBeGreaterThan(
      defaults.requestTimeoutMs,
    );
  });
});

describe('deploy/Dockerfile', () => {
  const df = DockerfileParser.parse(read('Dockerfile'));
  const stages = df.getFROMs();
  const last = stages[stages.length - 1];
  const finalInstructions = df
    .getInstructions()
    .filter((i) => i.getRange().start.line > last.getRange().start.line);
  const args = (keyword: string) =>
    finalInstructions
      .filter((i) => i.getKeyword() === keyword)
      .map((i) => i.getArgumentsContent() ?? '');

  it('builds in one stage and runs slim, as a non-root user, with the CSV folder a volume', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    expect(last.getImageTag()).toMatch(/slim/);
    expect(
      df
        .getInstructions()
        .some(
          (i) =>
            i.getKeyword() === 'RUN' && /npm ci --omit=dev/.test(i.getArgumentsContent() ?? ''),
        ),
    ).toBe(true);
    const user = args('USER');
    expect(user).toHaveLength(1);
    expect(user[0]).not.toMatch(/^(root|0)$/);
    expect(args('VOLUME').join(' ')).toContain('/data/csv');
    expect(args('ENV').join(' ')).toMatch(/CSV_DIR=\/data\/csv/);
  });

  it('starts pm2-runtime directly (the signal reaches it) and checks /health/live', () => {
    expect(args('CMD')).toEqual(['["pm2-runtime", "ecosystem.config.js"]']);
    expect(args('HEALTHCHECK').join(' ')).toContain('/health/live');
  });
});

describe('deploy/systemd/ndjson-ingest.service', () => {
  it('verifies with systemd-analyze, pointed at this checkout', () => {
    if (!has('systemd-analyze')) {
      console.warn('systemd-analyze is not installed here: skipped');
      return;
    }
    const dir = mkdtempSync(join(tmpdir(), 'unit-'));
    const unit = read('systemd/ndjson-ingest.service')
      .replaceAll('/opt/ndjson-ingest', ROOT)
      .replace(/^User=.*$/m, 'User=root')
      .replace(/^Group=.*$/m, 'Group=root');
    writeFileSync(join(dir, 'ndjson-ingest.service'), unit);
    const r = spawnSync('systemd-analyze', ['verify', join(dir, 'ndjson-ingest.service')], {
      encoding: 'utf8',
    });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    writeFileSync(
      join(dir, 'broken.service'),
      unit.replace(/^ExecStart=.*$/m, 'ExecStart=/nonexistent/pm2-runtime'),
    );
    expect(spawnSync('systemd-analyze', ['verify', join(dir, 'broken.service')]).status).not.toBe(
      0,
    );
    rmSync(dir, { recursive: true });
  });

  it('stops gracefully within TimeoutStopSec', () => {
    const unit = read('systemd/ndjson-ingest.service');
    expect(unit).toMatch(/^ExecStart=\S+\/pm2-runtime ecosystem\.config\.js$/m);
    const delay = Number(/SHUTDOWN_DELAY_MS=(\d+)/.exec(unit)![1]);
    const drain = Number(/SHUTDOWN_TIMEOUT_MS=(\d+)/.exec(unit)![1]);
    expect(Number(/^TimeoutStopSec=(\d+)$/m.exec(unit)![1]) * 1000).toBeGreaterThan(
      delay + drain + 5000,
    );
  });
});

describe('deploy/k8s', () => {
  const models: Record<string, new (data: never) => { validate(): void }> = {
    'apps/v1/StatefulSet': StatefulSet as never,
    'v1/Service': Service as never,
    'policy/v1/PodDisruptionBudget': PodDisruptionBudget as never,
    'autoscaling/v2/HorizontalPodAutoscaler': HorizontalPodAutoscaler as never,
    'monitoring.coreos.com/v1/PodMonitor': PodMonitor as never,
  };
  const docs = execFileSync('ls', [join(DEPLOY, 'k8s')], { encoding: 'utf8' })
    .split('\n')
    .filter((f) => f.endsWith('.yaml'))
    .flatMap((f) =>
      parseAllDocuments(read(`k8s/${f}`)).map((d) => ({
        file: f,
        doc: d.toJSON() as Record<string, unknown>,
      })),
    );

  it('every manifest validates against its Kubernetes schema', () => {
    const kinds = docs.map(({ doc }) => `${doc.apiVersion as string}/${doc.kind as string}`);
    expect(new Set(kinds)).toEqual(new Set(Object.keys(models)));
    for (const { doc } of docs) {
      const Model = models[`${doc.apiVersion as string}/${doc.kind as string}`];
      expect(() => new Model(doc as never).validate()).not.toThrow();
    }
    // The validation can fail: a wrong type is refused.
    const set = docs.find(({ doc }) => doc.kind === 'StatefulSet')!.doc as {
      spec: { replicas: unknown };
    };
    expect(() =>
      new StatefulSet({ ...set, spec: { ...set.spec, replicas: 'three' } } as never).validate(),
    ).toThrow();
  });

  it('the StatefulSet: a volume per pod, NODE_NAME from the pod, probes, preStop inside the grace period', () => {
    const set = docs.find(({ doc }) => doc.kind === 'StatefulSet')!.doc as never as {
      spec: {
        volumeClaimTemplates: { metadata: { name: string } }[];
        template: {
          spec: {
            terminationGracePeriodSeconds: number;
            containers: {
              env: {
                name: string;
                value?: string;
                valueFrom?: { fieldRef?: { fieldPath: string } };
              }[];
              readinessProbe: { httpGet: { path: string } };
              livenessProbe: { httpGet: { path: string } };
              lifecycle: { preStop: { exec: { command: string[] } } };
              volumeMounts: { name: string; mountPath: string }[];
            }[];
          };
        };
      };
    };
    const pod = set.spec.template.spec;
    const c = pod.containers[0];
    const env = new Map(c.env.map((e) => [e.name, e]));
    expect(env.get('NODE_NAME')?.valueFrom?.fieldRef?.fieldPath).toBe('metadata.name');
    expect(c.readinessProbe.httpGet.path).toBe('/health');
    expect(c.livenessProbe.httpGet.path).toBe('/health/live');
    const csvDir = env.get('CSV_DIR')!.value!;
    const mount = c.volumeMounts.find((m) => m.mountPath === csvDir)!;
    expect(set.spec.volumeClaimTemplates.map((v) => v.metadata.name)).toContain(mount.name);
    const preStop = Number(c.lifecycle.preStop.exec.command[1]);
    const delay = Number(env.get('SHUTDOWN_DELAY_MS')!.value) / 1000;
    const drain = Number(env.get('SHUTDOWN_TIMEOUT_MS')!.value) / 1000;
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThan(preStop + delay + drain + 5);
  });
});

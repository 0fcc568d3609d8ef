/**
 * `node --import ./bench/profile/register.mjs dist/main.js`: the built service, with V8's sampling
 * profiler started and stopped by SIGUSR2, for `npm run bench:profile`. `--cpu-prof` would profile
 * the whole life of the process, start-up and warm-up included; this profiles only the requests
 * the bench measures. The first SIGUSR2 starts the profiler, the second writes the profile to
 * PROFILE_OUT; each step is confirmed over the IPC channel. Bench only: the service itself has no
 * such switch.
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';

const out = process.env.PROFILE_OUT;
const intervalUs = Number(process.env.PROFILE_INTERVAL_US ?? 250);
if (out === undefined) throw new Error('PROFILE_OUT is not set');

const session = new Session();
session.connect();
const post = (method, params = {}) =>
  new Promise((resolve, reject) =>
    session.post(method, params, (err, result) => (err ? reject(err) : resolve(result))),
  );

let running = false;
process.on('SIGUSR2', () => {
  const step = running
    ? post('Profiler.stop').then(({ profile }) => {
        writeFileSync(out, JSON.stringify(profile));
        running = false;
        return 'written';
      })
    : post('Profiler.enable')
        .then(() => post('Profiler.setSamplingInterval', { interval: intervalUs }))
        .then(() => post('Profiler.start'))
        .then(() => {
          running = true;
          return 'started';
        });
  step.then(
    (state) => process.send?.({ profiler: state }),
    (err) => process.send?.({ profiler: 'failed', message: String(err) }),
  );
});

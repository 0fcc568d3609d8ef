// Types of bad-inputs.js for the TypeScript tests that replay its cases (k6 ignores this file).
export interface BadInput {
  code: string | null;
  status: number;
  method: string;
  path: string;
  headers: Record<string, string>;
  body: string | ArrayBuffer | null;
}
export function badInputs(env: Record<string, string | undefined>): BadInput[];
export function answersAsExpected(c: BadInput, status: number, answer: unknown): boolean;

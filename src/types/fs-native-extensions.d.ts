// The part of fs-native-extensions' API used here (the package ships no types).
declare module 'fs-native-extensions' {
  interface LockOptions {
    shared?: boolean;
  }
  export function tryLock(
    fd: number,
    offset?: number,
    length?: number,
    opts?: LockOptions,
  ): boolean;
  export function unlock(fd: number, offset?: number, length?: number): void;
}

// Convex skips files with more than one dot in their name; so must the local backend.
throw new Error("never.loaded.ts must not be imported");

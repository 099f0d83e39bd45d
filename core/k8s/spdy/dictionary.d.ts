/** Types for spdy-transport's dictionary module: the zlib dictionaries by SPDY version. */
declare const dictionaries: Record<string, Uint8Array>;
export default dictionaries;

// Batching: events that arrive within `windowMs` of each other go out in one request.
export const createBatcher = (windowMs, flush) => {
  let timer = 0;
  return {
    schedule() {
      if (!timer) timer = setTimeout(() => { timer = 0; flush(); }, windowMs);
    },
    cancel() {
      clearTimeout(timer);
      timer = 0;
    },
  };
};

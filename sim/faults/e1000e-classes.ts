export const E1000E_CLASSES: readonly import('./classes.js').FaultClass[] = [];

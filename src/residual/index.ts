/** anywidget entry for the residual-stream explorer (bundled to lenswidget/static/residual.js). */
import { render } from "./view";

export { render };
export default { render };

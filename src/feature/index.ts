/** anywidget entry for the SAE feature dashboard (bundled to lenswidget/static/feature.js). */
import { render } from "./view";

export { render };
export default { render };

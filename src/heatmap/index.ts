/** anywidget entry for the head heatmap (bundled to lenswidget/static/heatmap.js). */
import { render } from "./view";

export { render };
export default { render };

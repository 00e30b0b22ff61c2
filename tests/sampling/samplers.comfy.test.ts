import { describe, expect, it } from 'vitest';
import { getSampler } from '../../engine/sampling/samplers/index.ts';
import type { Denoise, NoiseSampler, SamplerOptions } from '../../engine/sampling/samplers/types.ts';

/*
 * Agreement with ComfyUI itself. GOLDEN holds the outputs of ComfyUI's own sampler functions
 * (comfy/k_diffusion/sampling.py, deis.py and extra_samplers/uni_pc.py at their 2025 state, ε/VE
 * branches) run under torch 2.13 on CPU in float32, outside this repository, on the setup below:
 *  - x_T[j] = 14.5·cos(0.9j + 0.4) + 0.1j, j = 0…5, as one batch row;
 *  - the Gaussian denoiser D(x, σ) = (s²x + σ²μ)/(s² + σ²), μ = 0.3, s² = 0.25;
 *  - noise: call k returns 1.1·sin(1.3k + 0.7j + 0.2) (same values for every interval, so the
 *    Brownian-tree samplers see it as plain call-order noise, which checks their call pattern too);
 *  - σ's exactly representable in float32, with ("zero") and without ("nozero") a final 0.
 * Keys are sampler/schedule[/options]. Tolerance is float32 round-off, except dpm_adaptive whose
 * accept/reject decisions at errors of ~1e-6 hinge on round-off itself.
 */

const GOLDEN: Record<string, number[]> = {
  'euler/zero': [0.66319185, 0.40233988, 0.05982852, -0.1030312, 0.039115123, 0.38079926],
  'euler_ancestral/zero': [0.20399748, 0.28199336, 0.36702666, 0.42338368, 0.4266403, 0.37361646],
  'heun/zero': [0.79292458, 0.43889579, -0.025961174, -0.24699436, -0.054073282, 0.40966082],
  'heunpp2/zero': [0.67027646, 0.40433612, 0.055143513, -0.1108931, 0.034026168, 0.38237536],
  'exp_heun_2_x0/zero': [0.7232362, 0.4192591, 0.020122243, -0.16966206, -0.0040154587, 0.39415732],
  'exp_heun_2_x0_sde/zero': [0.28743541, 0.29585376, 0.30479077, 0.31432205, 0.32204622, 0.32268214],
  'dpm_2/zero': [0.77271056, 0.43319988, -0.012594056, -0.22456324, -0.039553344, 0.40516382],
  'dpm_2_ancestral/zero': [0.14592515, 0.11190323, 0.16184436, 0.28571752, 0.43180981, 0.52622706],
  'lms/zero': [0.71070224, 0.41572723, 0.028410869, -0.15575303, 0.0049878792, 0.39136887],
  'dpm_fast/zero': [0.79235893, 0.43873632, -0.025587076, -0.24636699, -0.053666979, 0.40953505],
  'dpm_adaptive/zero': [0.76296908, 0.43045503, -0.0061523747, -0.21375348, -0.032556128, 0.40299678],
  'dpmpp_2s_ancestral/zero': [0.17648104, 0.21761091, 0.29501706, 0.37968552, 0.43539122, 0.43308714],
  'dpmpp_sde/zero': [0.3175613, 0.33509412, 0.33469033, 0.32081842, 0.30208424, 0.28565007],
  'dpmpp_2m/zero': [0.76946747, 0.43228617, -0.010449549, -0.22096451, -0.037223902, 0.40444237],
  'dpmpp_2m_sde/zero': [0.089321323, 0.28570318, 0.48737776, 0.603773, 0.58222777, 0.43122709],
  'dpmpp_2m_sde_heun/zero': [0.022742093, 0.27489167, 0.5374189, 0.69113153, 0.6658178, 0.47173458],
  'dpmpp_3m_sde/zero': [0.042893164, 0.45593467, 0.79420632, 0.90289241, 0.7329576, 0.36267668],
  'ddpm/zero': [0.20399764, 0.28199336, 0.36702657, 0.42338347, 0.42664018, 0.37361631],
  'lcm/zero': [0.19302514, 0.34918261, 0.48220873, 0.52953923, 0.46891388, 0.32884574],
  'ipndm/zero': [0.76460004, 0.43091458, -0.0072307172, -0.21556306, -0.033727609, 0.40335953],
  'ipndm_v/zero': [0.74688286, 0.42592224, 0.0044853166, -0.19590233, -0.021001026, 0.39941797],
  'deis/zero': [0.72446585, 0.41960561, 0.019309208, -0.17102635, -0.0048986087, 0.39443079],
  'res_multistep/zero': [0.7911455, 0.43839443, -0.024784664, -0.24502021, -0.052795302, 0.40926516],
  'res_multistep_ancestral/zero': [0.022742098, 0.27489167, 0.53741878, 0.69113153, 0.66581768, 0.47173464],
  'gradient_estimation/zero': [0.79052591, 0.43821996, -0.02437491, -0.24433269, -0.052350305, 0.40912721],
  'er_sde/zero': [0.68010306, 0.50190055, 0.20403606, 0.00044987173, 0.022820285, 0.23217252],
  'seeds_2/zero': [0.30653316, 0.32762277, 0.33428964, 0.32767692, 0.31297621, 0.29545295],
  'seeds_3/zero': [0.32329676, 0.3087016, 0.28858268, 0.27668068, 0.28067502, 0.29703861],
  'uni_pc/zero': [0.79747707, 0.44017857, -0.028971618, -0.25204647, -0.05734339, 0.41067371],
  'uni_pc_bh2/zero': [0.79254466, 0.43878892, -0.025710074, -0.24657308, -0.053800572, 0.40957642],
  'euler/nozero': [0.66443878, 0.40269125, 0.059003957, -0.1044149, 0.038219444, 0.38107666],
  'euler_ancestral/nozero': [0.20366788, 0.28193155, 0.36725676, 0.42380729, 0.42707509, 0.37386921],
  'heun/nozero': [0.79461688, 0.43937266, -0.027080273, -0.24887232, -0.055288896, 0.41003731],
  'heunpp2/nozero': [0.67154312, 0.40469304, 0.05430593, -0.11229865, 0.033116348, 0.38265714],
  'exp_heun_2_x0/nozero': [0.72468925, 0.41966856, 0.019161358, -0.17127451, -0.0050592129, 0.39448059],
  'exp_heun_2_x0_sde/nozero': [0.28739229, 0.29583952, 0.30480722, 0.31437123, 0.32212192, 0.32276002],
  'dpm_2/nozero': [0.77433348, 0.4336572, -0.013667263, -0.22636418, -0.040719107, 0.40552488],
  'dpm_2_ancestral/nozero': [0.14539617, 0.11125745, 0.16137004, 0.28566849, 0.43226233, 0.52700377],
  'lms/nozero': [0.71211225, 0.41612455, 0.027478442, -0.15731773, 0.0039750356, 0.39168257],
  'dpm_fast/nozero': [0.79061198, 0.43824396, -0.024431918, -0.2444285, -0.052412517, 0.4091464],
  'dpm_adaptive/nozero': [0.76296908, 0.43045503, -0.0061523747, -0.21375348, -0.032556128, 0.40299678],
  'dpmpp_2s_ancestral/nozero': [0.17605697, 0.21732806, 0.29499996, 0.37995911, 0.43585604, 0.43354407],
  'dpmpp_sde/nozero': [0.31762159, 0.33521461, 0.33480942, 0.32088989, 0.30209139, 0.28560081],
  'dpmpp_2m/nozero': [0.77107924, 0.43274033, -0.011515393, -0.22275309, -0.03838167, 0.40480095],
  'dpmpp_2m_sde/nozero': [0.088598013, 0.2856541, 0.48802108, 0.6048159, 0.5831967, 0.43167761],
  'dpmpp_2m_sde_heun/nozero': [0.021790203, 0.27480549, 0.538234, 0.69247437, 0.66707373, 0.47232419],
  'dpmpp_3m_sde/nozero': [0.042010456, 0.45647004, 0.79590303, 0.9049623, 0.73444402, 0.36289185],
  'ddpm/nozero': [0.20366803, 0.28193155, 0.3672567, 0.42380711, 0.427075, 0.37386906],
  'lcm/nozero': [0.19265787, 0.34935147, 0.48283428, 0.53032726, 0.46949381, 0.32894477],
  'ipndm/nozero': [0.76619512, 0.43136403, -0.0082855104, -0.21733311, -0.03487337, 0.40371439],
  'ipndm_v/nozero': [0.74841708, 0.42635456, 0.0034707473, -0.19760488, -0.022103095, 0.39975929],
  'deis/nozero': [0.72592312, 0.42001626, 0.018345533, -0.17264348, -0.0059453947, 0.39475498],
  'res_multistep/nozero': [0.79283172, 0.43886957, -0.025899723, -0.24689139, -0.054006528, 0.40964028],
  'res_multistep_ancestral/nozero': [0.021790208, 0.27480549, 0.53823388, 0.69247437, 0.66707361, 0.47232425],
  'gradient_estimation/nozero': [0.79220998, 0.43869451, -0.025488563, -0.2462015, -0.053560004, 0.40950185],
  'er_sde/nozero': [0.68140805, 0.5025937, 0.20370659, -0.00057855202, 0.021868663, 0.23193966],
  'seeds_2/nozero': [0.3065556, 0.3277176, 0.33440736, 0.32777193, 0.31302077, 0.29543734],
  'seeds_3/nozero': [0.32337674, 0.30873147, 0.28854349, 0.27660063, 0.28060868, 0.29702845],
  'uni_pc/nozero': [0.8044591, 0.44214597, -0.033588704, -0.25979438, -0.062358707, 0.41222703],
  'uni_pc_bh2/nozero': [0.78868777, 0.43770209, -0.023159599, -0.24229307, -0.051030107, 0.40871835],
  'dpm_fast/zero/eta=1': [1.1314372, 1.1514262, 0.75941348, 0.1743321, -0.31182998, -0.48373932],
  'dpm_adaptive/zero/eta=0.5,order=2': [0.58509529, 0.37603569, 0.10136871, -0.0205056, 0.11113837, 0.40001091],
  'lcm/zero/s_noise_end=0.2,noise_clip_std=0.9': [0.22748996, 0.28896528, 0.36545753, 0.40373018, 0.38754371, 0.34880248],
  'dpmpp_2m_sde/zero/eta=0.6,s_noise=0.8': [0.24228807, 0.30682725, 0.36236858, 0.40008864, 0.41066292, 0.38245323],
  'dpmpp_sde/zero/eta=0.7,r=0.4': [0.48883954, 0.38454515, 0.22754757, 0.13036749, 0.15752913, 0.28135428],
  'euler_ancestral/zero/eta=1.5': [0.30000001, 0.30000001, 0.30000001, 0.30000001, 0.30000001, 0.30000001],
  'er_sde/zero/s_noise=0.5': [0.62386221, 0.43865532, 0.16353165, 0.0017362748, 0.065292388, 0.29585508],
  'seeds_3/zero/eta=0.5': [0.41234505, 0.35192358, 0.25937572, 0.20126353, 0.21612523, 0.28809559],
  'uni_pc/short3': [0.64874303, 0.39826864, 0.06938383, -0.0869978, 0.049493581, 0.3775849],
  'uni_pc_bh2/short4': [0.65598482, 0.40030903, 0.064594328, -0.095033638, 0.044291981, 0.37919587],
};

const MU = 0.3;
const S2 = 0.25;
const N = 6;
const X_T = Float32Array.from({ length: N }, (_, j) => 14.5 * Math.cos(0.9 * j + 0.4) + 0.1 * j);
const S = [14.5, 8.25, 4.375, 2.25, 1.0625, 0.46875, 0.1875, 0.0703125, 0.029296875, 0];
const SCHEDULES: Record<string, number[]> = {
  zero: S,
  nozero: S.slice(0, -1),
  short3: [14.5, 2.25, 0.1875, 0],
  short4: [14.5, 4.375, 1.0625, 0.1875, 0],
};

const gaussian: Denoise = async (x, sigma) => {
  const o = new Float32Array(x.data.length);
  for (let k = 0; k < o.length; k++) o[k] = (S2 * x.data[k] + sigma * sigma * MU) / (S2 + sigma * sigma);
  return { shape: x.shape, data: o };
};

function sineNoise(): NoiseSampler {
  let k = 0;
  return () => {
    const v = Float32Array.from({ length: N }, (_, j) => 1.1 * Math.sin(1.3 * k + 0.7 * j + 0.2));
    k++;
    return v;
  };
}

describe('agreement with ComfyUI (torch float32 reference outputs)', () => {
  it('covers every implemented sampler that is not an alias', () => {
    const covered = new Set(Object.keys(GOLDEN).map((k) => k.split('/')[0]));
    for (const name of [
      'euler',
      'euler_ancestral',
      'heun',
      'heunpp2',
      'exp_heun_2_x0',
      'exp_heun_2_x0_sde',
      'dpm_2',
      'dpm_2_ancestral',
      'lms',
      'dpm_fast',
      'dpm_adaptive',
      'dpmpp_2s_ancestral',
      'dpmpp_sde',
      'dpmpp_2m',
      'dpmpp_2m_sde',
      'dpmpp_2m_sde_heun',
      'dpmpp_3m_sde',
      'ddpm',
      'lcm',
      'ipndm',
      'ipndm_v',
      'deis',
      'res_multistep',
      'res_multistep_ancestral',
      'gradient_estimation',
      'er_sde',
      'seeds_2',
      'seeds_3',
      'uni_pc',
      'uni_pc_bh2',
    ])
      // prettier-ignore
      expect(covered.has(name), name).toBe(true);
  });

  for (const [key, want] of Object.entries(GOLDEN)) {
    it(key, async () => {
      const [name, schedule, optText] = key.split('/');
      const opts: Record<string, number> = {};
      for (const kv of optText ? optText.split(',') : []) {
        const [k, v] = kv.split('=');
        opts[k] = Number(v);
      }
      const out = await getSampler(name)(
        { denoise: gaussian, noise: sineNoise() },
        { shape: [1, N], data: X_T },
        Float64Array.from(SCHEDULES[schedule]),
        opts as SamplerOptions,
      );
      const scale = Math.max(1, ...want.map(Math.abs));
      const tol = (key === 'dpm_adaptive/zero' || key === 'dpm_adaptive/nozero' ? 1e-3 : 4e-6) * scale;
      for (let k = 0; k < N; k++) expect(Math.abs(out.data[k] - want[k]), `${key}[${k}]`).toBeLessThanOrEqual(tol);
    });
  }
});
